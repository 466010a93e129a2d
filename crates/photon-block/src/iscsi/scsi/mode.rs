//! Mode parameters (SPC-4 §7.5, SBC-3 §6.4): MODE SENSE(6/10) reports the caching page
//! (write cache enabled: writes are durable only after SYNCHRONIZE CACHE or FUA) and the
//! control page, with or without a block descriptor. Nothing is changeable, so MODE SELECT
//! accepts only the current values and refuses any change.

use bytes::Bytes;

use super::cdb::{Command, Geometry};
use super::sense::Sense;
use super::{truncated, Outcome, LOGICAL_BLOCK};

const CACHING: u8 = 0x08;
const CONTROL: u8 = 0x0a;
const ALL_PAGES: u8 = 0x3f;

// Page control values (0 is current, 2 default: both report the current values).
const CHANGEABLE: u8 = 1;
const SAVED: u8 = 3;

/// A page's current values.
fn page(code: u8) -> Option<Vec<u8>> {
    match code {
        CACHING => {
            let mut p = vec![0u8; 20];
            p[0] = CACHING;
            p[1] = 18;
            // WCE.
            p[2] = 0x04;
            Some(p)
        }
        CONTROL => {
            let mut p = vec![0u8; 12];
            p[0] = CONTROL;
            p[1] = 10;
            // Queue algorithm modifier 1: simple tasks may be reordered.
            p[3] = 0x10;
            // Busy timeout period: unlimited.
            p[8..10].copy_from_slice(&0xffffu16.to_be_bytes());
            Some(p)
        }
        _ => None,
    }
}

/// A page as MODE SENSE reports it for page control `pc`: changeable values are all zero.
fn reported(code: u8, pc: u8) -> Option<Vec<u8>> {
    let mut p = page(code)?;
    if pc == CHANGEABLE {
        p[2..].fill(0);
    }
    Some(p)
}

/// The device-specific parameter: WP when read-only, DPOFUA (DPO and FUA are honoured).
fn device_specific(g: &Geometry) -> u8 {
    let wp = if g.read_only { 0x80 } else { 0 };
    wp | 0x10
}

pub fn sense(cmd: &Command, g: &Geometry) -> Outcome {
    let Command::ModeSense { ten, dbd, llbaa, control, page, subpage, alloc } = *cmd else {
        return Outcome::check(Sense::INVALID_OPCODE);
    };
    if control == SAVED {
        return Outcome::check(Sense::SAVING_NOT_SUPPORTED);
    }
    let codes: Vec<u8> = match (page, subpage) {
        (ALL_PAGES, 0 | 0xff) => vec![CACHING, CONTROL],
        (CACHING | CONTROL, 0) => vec![page],
        _ => return Outcome::check(Sense::cdb_field(2, None)),
    };
    let mut pages = Vec::new();
    for code in codes {
        pages.extend(reported(code, control).unwrap_or_default());
    }
    let long = ten && llbaa;
    let descriptor = if dbd { Vec::new() } else { block_descriptor(g, long) };
    let mut data = if ten {
        let mut h = vec![0u8; 8];
        h[3] = device_specific(g);
        h[4] = u8::from(long);
        h[6..8].copy_from_slice(&(descriptor.len() as u16).to_be_bytes());
        h
    } else {
        vec![0, 0, device_specific(g), descriptor.len() as u8]
    };
    data.extend_from_slice(&descriptor);
    data.extend_from_slice(&pages);
    // The mode data length excludes itself.
    if ten {
        let len = (data.len() - 2) as u16;
        data[0..2].copy_from_slice(&len.to_be_bytes());
    } else {
        data[0] = (data.len() - 1) as u8;
    }
    Outcome::good(truncated(data, alloc))
}

fn block_descriptor(g: &Geometry, long: bool) -> Vec<u8> {
    if long {
        let mut d = g.blocks.to_be_bytes().to_vec();
        d.extend_from_slice(&[0; 4]);
        d.extend_from_slice(&LOGICAL_BLOCK.to_be_bytes());
        d
    } else {
        let blocks = u32::try_from(g.blocks).unwrap_or(u32::MAX);
        let mut d = blocks.to_be_bytes().to_vec();
        d.push(0);
        d.extend_from_slice(&LOGICAL_BLOCK.to_be_bytes()[1..]);
        d
    }
}

/// MODE SELECT: the parameter list may only restate current values.
pub fn select(cmd: &Command, data: &Bytes) -> Outcome {
    let Command::ModeSelect { ten, len } = *cmd else { return Outcome::check(Sense::INVALID_OPCODE) };
    match check_select(ten, len as usize, data) {
        Ok(()) => Outcome::good(Bytes::new()),
        Err(sense) => Outcome::check(sense),
    }
}

fn check_select(ten: bool, len: usize, data: &[u8]) -> Result<(), Sense> {
    if len == 0 {
        return Ok(());
    }
    let header = if ten { 8 } else { 4 };
    if data.len() < len || len < header {
        return Err(Sense::PARAMETER_LIST_LENGTH);
    }
    let data = &data[..len];
    let descriptors = if ten { usize::from(u16::from_be_bytes([data[6], data[7]])) } else { usize::from(data[3]) };
    let mut at = header + descriptors;
    if at > len {
        return Err(Sense::PARAMETER_LIST_LENGTH);
    }
    // A block descriptor may only restate the logical block size.
    let mut d = header;
    while d + 8 <= header + descriptors {
        let size = u32::from_be_bytes([0, data[d + 5], data[d + 6], data[d + 7]]);
        if !ten && size != LOGICAL_BLOCK {
            return Err(Sense::parameter_field((d + 5) as u16, None));
        }
        d += 8;
    }
    while at < len {
        if at + 2 > len {
            return Err(Sense::PARAMETER_LIST_LENGTH);
        }
        let code = data[at] & 0x3f;
        let Some(current) = page(code) else { return Err(Sense::parameter_field(at as u16, None)) };
        let end = at + 2 + usize::from(data[at + 1]);
        if end > len || end - at != current.len() {
            return Err(Sense::parameter_field((at + 1) as u16, None));
        }
        if let Some(i) = (2..current.len()).find(|&i| data[at + i] != current[i]) {
            return Err(Sense::parameter_field((at + i) as u16, None));
        }
        at = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Geometry = Geometry { blocks: 2048, read_only: false };

    fn mode_sense(ten: bool, dbd: bool, control: u8, page: u8, alloc: u32) -> Outcome {
        let cmd = Command::ModeSense { ten, dbd, llbaa: false, control, page, subpage: 0, alloc };
        sense(&cmd, &G)
    }

    #[test]
    fn all_pages_with_a_block_descriptor() {
        let d = mode_sense(false, false, 0, ALL_PAGES, 255).data;
        assert_eq!(d.len(), 4 + 8 + 20 + 12);
        assert_eq!((d[0] as usize, d[2], d[3]), (d.len() - 1, 0x10, 8));
        assert_eq!(&d[4..12], &[0, 0, 8, 0, 0, 0, 2, 0]);
        assert_eq!((d[12], d[14]), (CACHING, 0x04), "write cache enabled");
        assert_eq!(d[32], CONTROL);
        let d = mode_sense(true, true, CHANGEABLE, CONTROL, 255).data;
        assert_eq!(d.len(), 8 + 12);
        assert!(d[10..].iter().all(|&b| b == 0), "nothing is changeable");
        assert_eq!(mode_sense(false, true, SAVED, CACHING, 255).sense, Some(Sense::SAVING_NOT_SUPPORTED));
        assert_eq!(mode_sense(false, true, 0, 0x1c, 255).status, super::super::sense::CHECK_CONDITION);
        let ro = Geometry { read_only: true, ..G };
        let cmd =
            Command::ModeSense { ten: false, dbd: true, llbaa: false, control: 0, page: 0x3f, subpage: 0, alloc: 4 };
        assert_eq!(sense(&cmd, &ro).data[2] & 0x80, 0x80);
    }

    #[test]
    fn mode_select_accepts_current_values_only() {
        let mut list = vec![0, 0, 0, 0];
        list.extend(page(CACHING).unwrap());
        assert_eq!(check_select(false, list.len(), &list), Ok(()));
        list[6] = 0;
        assert_eq!(check_select(false, list.len(), &list), Err(Sense::parameter_field(6, None)));
        assert_eq!(check_select(false, 0, &[]), Ok(()));
        assert_eq!(check_select(false, 10, &[0; 4]), Err(Sense::PARAMETER_LIST_LENGTH));
        assert_eq!(check_select(false, 6, &[0, 0, 0, 0, 0x1c, 4]), Err(Sense::parameter_field(4, None)));
    }
}
