//! What the logical unit says about itself: standard INQUIRY data, the VPD pages (supported
//! pages, unit serial number, device identification, block limits, block device
//! characteristics, logical block provisioning), READ CAPACITY and REPORT LUNS.

use bytes::Bytes;

use super::cdb::Geometry;
use super::sense::Sense;
use super::{
    truncated, Identity, Outcome, LOGICAL_BLOCK, MAX_COMPARE_AND_WRITE_BLOCKS, MAX_TRANSFER_BLOCKS, MAX_UNMAP_BLOCKS,
    MAX_UNMAP_DESCRIPTORS, MAX_WRITE_SAME_BLOCKS,
};
use crate::device::BlockDevice;

pub const VENDOR: &[u8; 8] = b"PHOTON  ";
pub const PRODUCT: &[u8; 16] = b"LightningStor   ";
pub const REVISION: &[u8; 4] = b"0001";

// VPD pages.
const SUPPORTED_PAGES: u8 = 0x00;
const UNIT_SERIAL: u8 = 0x80;
const DEVICE_IDENTIFICATION: u8 = 0x83;
const BLOCK_LIMITS: u8 = 0xb0;
const BLOCK_CHARACTERISTICS: u8 = 0xb1;
const PROVISIONING: u8 = 0xb2;
const PAGES: [u8; 6] =
    [SUPPORTED_PAGES, UNIT_SERIAL, DEVICE_IDENTIFICATION, BLOCK_LIMITS, BLOCK_CHARACTERISTICS, PROVISIONING];

/// The transfer length initiators are told is best (1 MiB): large enough to stream, small
/// enough to keep many commands in flight.
const OPTIMAL_TRANSFER_BLOCKS: u32 = 2048;

// Version descriptors: SAM-5, iSCSI, SPC-4, SBC-3.
const VERSIONS: [u16; 4] = [0x00a0, 0x0960, 0x0460, 0x04c0];

/// What identification answers need.
pub struct Unit<'a> {
    pub identity: &'a Identity,
    pub device: &'a dyn BlockDevice,
    pub geometry: &'a Geometry,
}

impl Unit<'_> {
    /// Logical blocks per device block (a power of two: 8 for 4 KiB devices).
    fn blocks_per_physical(&self) -> u32 {
        (self.device.block_size() / LOGICAL_BLOCK).max(1)
    }
}

pub fn inquiry(unit: &Unit<'_>, evpd: bool, page: u8, alloc: u32) -> Outcome {
    if !evpd {
        return Outcome::good(truncated(standard(), alloc));
    }
    let body = match page {
        SUPPORTED_PAGES => PAGES.to_vec(),
        UNIT_SERIAL => unit.identity.serial.as_bytes().to_vec(),
        DEVICE_IDENTIFICATION => identification(unit.identity),
        BLOCK_LIMITS => block_limits(unit),
        BLOCK_CHARACTERISTICS => characteristics(),
        PROVISIONING => provisioning(),
        _ => return Outcome::check(Sense::cdb_field(2, None)),
    };
    let mut data = vec![0x00, page];
    data.extend_from_slice(&(body.len() as u16).to_be_bytes());
    data.extend_from_slice(&body);
    Outcome::good(truncated(data, alloc))
}

fn standard() -> Vec<u8> {
    let mut d = vec![0u8; 96];
    // Direct-access block device, connected; not removable.
    d[0] = 0x00;
    // SPC-4; HISUP with response data format 2.
    d[2] = 0x06;
    d[3] = 0x10 | 0x02;
    d[4] = (d.len() - 5) as u8;
    // CMDQUE: tasks are queued.
    d[7] = 0x02;
    d[8..16].copy_from_slice(VENDOR);
    d[16..32].copy_from_slice(PRODUCT);
    d[32..36].copy_from_slice(REVISION);
    for (i, v) in VERSIONS.iter().enumerate() {
        d[58 + 2 * i..60 + 2 * i].copy_from_slice(&v.to_be_bytes());
    }
    d
}

/// INQUIRY data for a LUN that does not exist: peripheral qualifier 3, type 0x1f.
pub fn absent_inquiry() -> Vec<u8> {
    let mut d = standard();
    d[0] = 0x7f;
    d
}

/// Device identification designators: the NAA and a T10 vendor id for the logical unit, the
/// relative port, and the target's iSCSI name for the target device.
fn identification(identity: &Identity) -> Vec<u8> {
    let mut out = Vec::new();
    // Binary code set, LU association, NAA.
    designator(&mut out, 0x01, 0x03, &identity.naa);
    // ASCII code set, LU association, T10 vendor id: vendor then serial.
    let mut t10 = VENDOR.to_vec();
    t10.extend_from_slice(identity.serial.as_bytes());
    designator(&mut out, 0x02, 0x01, &t10);
    // Binary, PIV with iSCSI, target port association, relative target port 1.
    out.push(0x50 | 0x01);
    out.extend_from_slice(&[0x80 | 0x10 | 0x04, 0, 4, 0, 0, 0, 1]);
    // UTF-8, target device association, SCSI name string: NUL-terminated, multiple of four.
    let mut name = identity.target.as_bytes().to_vec();
    name.push(0);
    name.resize(name.len().div_ceil(4) * 4, 0);
    if name.len() <= 255 {
        out.push(0x50 | 0x03);
        out.extend_from_slice(&[0x80 | 0x20 | 0x08, 0, name.len() as u8]);
        out.extend_from_slice(&name);
    }
    out
}

fn designator(out: &mut Vec<u8>, code_set: u8, kind: u8, id: &[u8]) {
    out.extend_from_slice(&[code_set, kind, 0, id.len() as u8]);
    out.extend_from_slice(id);
}

fn block_limits(unit: &Unit<'_>) -> Vec<u8> {
    let mut b = vec![0u8; 0x3c];
    let granularity = unit.blocks_per_physical();
    // Offsets below are the page's minus the 4-byte header. WSNZ is 0: WRITE SAME of zero
    // blocks means "to the end".
    b[1] = MAX_COMPARE_AND_WRITE_BLOCKS as u8;
    b[2..4].copy_from_slice(&(granularity as u16).to_be_bytes());
    b[4..8].copy_from_slice(&MAX_TRANSFER_BLOCKS.to_be_bytes());
    b[8..12].copy_from_slice(&OPTIMAL_TRANSFER_BLOCKS.to_be_bytes());
    b[16..20].copy_from_slice(&MAX_UNMAP_BLOCKS.to_be_bytes());
    b[20..24].copy_from_slice(&MAX_UNMAP_DESCRIPTORS.to_be_bytes());
    b[24..28].copy_from_slice(&granularity.to_be_bytes());
    // UGAVALID with alignment 0.
    b[28..32].copy_from_slice(&0x8000_0000u32.to_be_bytes());
    b[32..40].copy_from_slice(&MAX_WRITE_SAME_BLOCKS.to_be_bytes());
    b
}

fn characteristics() -> Vec<u8> {
    let mut b = vec![0u8; 0x3c];
    // Medium rotation rate 1: not rotating.
    b[0..2].copy_from_slice(&1u16.to_be_bytes());
    b
}

fn provisioning() -> Vec<u8> {
    // Threshold exponent 0; LBPU, LBPWS, LBPWS10 and LBPRZ (unmapped blocks read zeroes);
    // provisioning type 2, thin.
    vec![0, 0x80 | 0x40 | 0x20 | 0x04, 0x02, 0]
}

pub fn read_capacity_10(unit: &Unit<'_>) -> Bytes {
    let last = unit.geometry.blocks.saturating_sub(1).min(u64::from(u32::MAX)) as u32;
    let mut d = last.to_be_bytes().to_vec();
    d.extend_from_slice(&LOGICAL_BLOCK.to_be_bytes());
    Bytes::from(d)
}

pub fn read_capacity_16(unit: &Unit<'_>) -> Vec<u8> {
    let mut d = vec![0u8; 32];
    d[0..8].copy_from_slice(&unit.geometry.blocks.saturating_sub(1).to_be_bytes());
    d[8..12].copy_from_slice(&LOGICAL_BLOCK.to_be_bytes());
    d[13] = unit.blocks_per_physical().trailing_zeros() as u8 & 0x0f;
    // LBPME and LBPRZ: thin provisioned, unmapped blocks read as zeroes.
    d[14] = 0x80 | 0x40;
    d
}

/// One logical unit, LUN 0.
pub fn report_luns() -> Vec<u8> {
    let mut d = 8u32.to_be_bytes().to_vec();
    d.extend_from_slice(&[0; 4]);
    d.extend_from_slice(&[0; 8]);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    fn with_unit<T>(f: impl FnOnce(&Unit<'_>) -> T) -> T {
        let identity = Identity::of("iqn.2026-12.io.photoncloud:test");
        let device = MemDevice::new(1 << 20);
        let geometry = Geometry { blocks: 2048, read_only: false };
        f(&Unit { identity: &identity, device: &device, geometry: &geometry })
    }

    #[test]
    fn standard_inquiry_claims_spc4_and_sbc3() {
        let d = with_unit(|u| inquiry(u, false, 0, 255)).data;
        assert_eq!(d.len(), 96);
        assert_eq!((d[0], d[2], d[3] & 0x0f, d[4]), (0, 6, 2, 91));
        assert_eq!(&d[8..16], VENDOR);
        assert!(d[58..74].chunks(2).any(|v| v == [0x04, 0xc0]));
        assert_eq!(with_unit(|u| inquiry(u, false, 0, 5)).data.len(), 5);
    }

    #[test]
    fn vpd_pages_have_their_lengths_and_flags() {
        let pages = with_unit(|u| inquiry(u, true, 0, 255)).data;
        assert_eq!(&pages[..], &[0, 0, 0, 6, 0, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
        let bl = with_unit(|u| inquiry(u, true, 0xb0, 255)).data;
        assert_eq!((bl.len(), bl[3]), (64, 0x3c));
        assert_eq!(&bl[6..8], &[0, 8], "4 KiB device blocks are 8 logical blocks");
        let lbp = with_unit(|u| inquiry(u, true, 0xb2, 255)).data;
        assert_eq!(&lbp[..], &[0, 0xb2, 0, 4, 0, 0xe4, 2, 0]);
        let id = with_unit(|u| inquiry(u, true, 0x83, 255)).data;
        assert_eq!(id[4..8], [1, 3, 0, 8]);
        assert_eq!(id[8] >> 4, 3, "NAA locally assigned");
        assert_eq!(with_unit(|u| inquiry(u, true, 0x99, 255)).status, super::super::sense::CHECK_CONDITION);
    }

    #[test]
    fn capacity_and_identity_are_stable() {
        let rc = with_unit(read_capacity_16);
        assert_eq!(&rc[0..8], &2047u64.to_be_bytes());
        assert_eq!((rc[13], rc[14]), (3, 0xc0));
        assert_eq!(&with_unit(read_capacity_10)[..], &[0, 0, 7, 0xff, 0, 0, 2, 0]);
        assert_eq!(Identity::of("a"), Identity::of("a"));
        assert_ne!(Identity::of("a").naa, Identity::of("b").naa);
    }
}
