//! The SCSI logical unit a target exposes as LUN 0: a direct-access block device (SBC-3) with
//! the SPC-4 commands initiators need, over a `BlockDevice`. Knows nothing of iSCSI: the
//! transport hands it CDBs and data-out bytes and gets back status, sense and data-in.
//!
//! Logical blocks are 512 bytes, what initiators and their tests expect; the device's own
//! block size shows as the physical block size (READ CAPACITY(16)) and as the optimal
//! transfer and unmap granularity (Block Limits VPD page).
//!
//! Code map: `cdb` parses and checks commands (pure); `info` answers identification
//! (INQUIRY, VPD pages, READ CAPACITY, REPORT LUNS); `mode` the mode pages; `opcodes` REPORT
//! SUPPORTED OPERATION CODES; `medium` runs commands on the device; `reservations` keeps
//! persistent reservations per target and `pr` encodes their commands; `sense` is sense data.

mod attention;
mod cdb;
mod info;
mod medium;
mod mode;
mod opcodes;
mod pr;
pub mod reservations;
pub mod sense;

use std::sync::Arc;

use bytes::Bytes;

use crate::device::BlockDevice;
pub use cdb::Command;
use cdb::{Access, Geometry};
use reservations::Shared;
use sense::Sense;

/// The logical block size initiators see.
pub const LOGICAL_BLOCK: u32 = 512;
/// The longest transfer one READ or WRITE may ask for (32 MiB, as the NBD server's maximum
/// payload), advertised in the Block Limits page; it bounds what one command makes the
/// target hold.
pub const MAX_TRANSFER_BLOCKS: u32 = 64 * 1024;
/// The longest COMPARE AND WRITE (it carries twice its length in data).
pub const MAX_COMPARE_AND_WRITE_BLOCKS: u32 = 255;
/// The longest WRITE SAME (2 GiB); larger ranges take several commands.
pub const MAX_WRITE_SAME_BLOCKS: u64 = 1 << 22;
/// The most blocks one UNMAP may deallocate, and the most descriptors it may carry.
pub const MAX_UNMAP_BLOCKS: u32 = 1 << 20;
pub const MAX_UNMAP_DESCRIPTORS: u32 = 1024;

/// An I_T nexus: one initiator port (initiator name and ISID) talking to this target port.
/// Reservations are held per nexus.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nexus {
    /// The iSCSI initiator port name, `<initiator name>,i,0x<ISID>`.
    pub port: Arc<str>,
    pub initiator: Arc<str>,
}

impl Nexus {
    pub fn new(initiator: &str, isid: [u8; 6]) -> Self {
        let isid: String = isid.iter().map(|b| format!("{b:02x}")).collect();
        Self { port: format!("{initiator},i,0x{isid}").into(), initiator: initiator.into() }
    }
}

/// A command's result: status, sense for CHECK CONDITION, and data-in (already cut to the
/// allocation length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: u8,
    pub sense: Option<Sense>,
    pub data: Bytes,
}

impl Outcome {
    pub fn good(data: impl Into<Bytes>) -> Self {
        Self { status: sense::GOOD, sense: None, data: data.into() }
    }

    pub fn check(sense: Sense) -> Self {
        Self { status: sense::CHECK_CONDITION, sense: Some(sense), data: Bytes::new() }
    }

    pub fn conflict() -> Self {
        Self { status: sense::RESERVATION_CONFLICT, sense: None, data: Bytes::new() }
    }
}

/// `data` cut to `alloc` bytes, as every data-in command answers.
pub fn truncated(mut data: Vec<u8>, alloc: u32) -> Bytes {
    data.truncate(alloc as usize);
    Bytes::from(data)
}

/// What identifies the logical unit, derived from the target name so it is the same on every
/// node serving the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub target: String,
    /// 16 hex digits (VPD page 0x80).
    pub serial: String,
    /// A locally assigned NAA designator (VPD page 0x83).
    pub naa: [u8; 8],
}

impl Identity {
    pub fn of(target: &str) -> Self {
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let hash =
            target.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        // NAA 3 (locally assigned) in the top nibble, 60 bits of the hash below it.
        let naa = ((3u64 << 60) | (hash >> 4)).to_be_bytes();
        Self { target: target.to_string(), serial: format!("{hash:016x}"), naa }
    }
}

/// LUN 0 of a target: the device, its identity, and the target's reservation state.
pub struct LogicalUnit {
    device: Arc<dyn BlockDevice>,
    identity: Identity,
    geometry: Geometry,
    shared: Arc<Shared>,
    /// Serialises COMPARE AND WRITE on this unit.
    atomic: tokio::sync::Mutex<()>,
}

impl LogicalUnit {
    /// LUN 0 of `target` over `device`, sharing reservations and unit attentions with the
    /// target's other sessions through `shared`.
    pub fn new(target: &str, device: Arc<dyn BlockDevice>, shared: Arc<Shared>) -> Self {
        let geometry = Geometry { blocks: device.size() / u64::from(LOGICAL_BLOCK), read_only: device.read_only() };
        Self { device, identity: Identity::of(target), geometry, shared, atomic: tokio::sync::Mutex::new(()) }
    }

    /// Parses and checks `cdb` for `nexus`: the command to run, or the outcome that answers
    /// it without running anything (no data-out is needed for those). `data_out` is the
    /// data-out length the initiator announced: commands whose data is one fixed-size unit
    /// (WRITE SAME's block, COMPARE AND WRITE's pair) are refused when it differs.
    pub fn plan(&self, cdb: &[u8], nexus: &Nexus, data_out: u32) -> Result<Command, Outcome> {
        let reports_attention =
            !matches!(cdb.first(), Some(&(cdb::op::INQUIRY | cdb::op::REPORT_LUNS | cdb::op::REQUEST_SENSE)));
        if reports_attention {
            if let Some(attention) = self.shared.attentions.take(&nexus.port) {
                return Err(Outcome::check(attention));
            }
        }
        let cmd = cdb::parse(cdb, &self.geometry).map_err(Outcome::check)?;
        let exact = matches!(cmd, Command::WriteSame { .. } | Command::CompareAndWrite { .. });
        if exact && data_out != cmd.data_out_len() {
            return Err(Outcome::check(Sense::INVALID_FIELD_IN_CDB));
        }
        if self.conflicts(&cmd, nexus) {
            return Err(Outcome::conflict());
        }
        Ok(cmd)
    }

    fn conflicts(&self, cmd: &Command, nexus: &Nexus) -> bool {
        self.shared.reservations.conflicts(nexus, cmd)
    }

    /// Runs a planned command with its data-out (possibly shorter than the CDB asked for when
    /// the initiator sent less).
    pub async fn execute(&self, cmd: Command, data_out: Bytes, nexus: &Nexus) -> Outcome {
        // The reservation may have changed since planning (another nexus preempted).
        if cmd.access() != Access::Free && self.conflicts(&cmd, nexus) {
            return Outcome::conflict();
        }
        let unit = info::Unit { identity: &self.identity, device: &*self.device, geometry: &self.geometry };
        match cmd {
            Command::TestUnitReady | Command::StartStopUnit | Command::PreFetch => Outcome::good(Bytes::new()),
            // Nothing is removable; preventing removal is trivially honoured.
            Command::PreventAllow { .. } => Outcome::good(Bytes::new()),
            Command::RequestSense { descriptor, alloc } => {
                // A pending unit attention is reported (and so cleared) here.
                let sense = self.shared.attentions.take(&nexus.port).unwrap_or(Sense::NO_SENSE);
                let data = if descriptor { sense.descriptor().to_vec() } else { sense.fixed().to_vec() };
                Outcome::good(truncated(data, alloc))
            }
            Command::Inquiry { evpd, page, alloc } => info::inquiry(&unit, evpd, page, alloc),
            Command::ReadCapacity10 => Outcome::good(info::read_capacity_10(&unit)),
            Command::ReadCapacity16 { alloc } => Outcome::good(truncated(info::read_capacity_16(&unit), alloc)),
            Command::ReportLuns { alloc } => Outcome::good(truncated(info::report_luns(), alloc)),
            Command::ModeSense { .. } => mode::sense(&cmd, &self.geometry),
            Command::ModeSelect { .. } => mode::select(&cmd, &data_out),
            Command::ReportOpcodes { .. } => opcodes::report(&cmd),
            Command::PersistentReserveIn { action, alloc } => pr::read(&self.shared.reservations, action, alloc),
            Command::PersistentReserveOut { action, scope, kind, len } => {
                pr::write(&self.shared.reservations, nexus, action, scope, kind, len, &data_out)
            }
            Command::Reserve6 => self.shared.reservations.reserve6(nexus),
            Command::Release6 => self.shared.reservations.release6(nexus),
            _ => medium::execute(&*self.device, &self.geometry, cmd, data_out, &self.atomic).await,
        }
    }

    /// The answer to any command addressed to a LUN that does not exist (SPC-4 §4.6.4):
    /// INQUIRY says "no device here", REPORT LUNS lists LUN 0, REQUEST SENSE reports the
    /// problem, everything else fails with LOGICAL UNIT NOT SUPPORTED.
    pub fn absent_lun(cdb: &[u8]) -> Outcome {
        let alloc16 = |at: usize| cdb.get(at..at + 2).map_or(0, |b| u32::from(u16::from_be_bytes([b[0], b[1]])));
        match cdb.first() {
            Some(&cdb::op::INQUIRY) if cdb.get(1).is_some_and(|b| b & 1 == 0) => {
                Outcome::good(truncated(info::absent_inquiry(), alloc16(3)))
            }
            Some(&cdb::op::REPORT_LUNS) => {
                let alloc = cdb.get(6..10).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                Outcome::good(truncated(info::report_luns(), alloc))
            }
            Some(&cdb::op::REQUEST_SENSE) => {
                let alloc = cdb.get(4).map_or(0, |&b| u32::from(b));
                Outcome::good(truncated(Sense::LU_NOT_SUPPORTED.fixed().to_vec(), alloc))
            }
            _ => Outcome::check(Sense::LU_NOT_SUPPORTED),
        }
    }

    /// A session for `nexus` opened: it is told of unit attentions from now on.
    pub fn nexus_joined(&self, nexus: &Nexus) {
        self.shared.attentions.joined(&nexus.port);
    }

    /// Ends everything `nexus` holds that does not outlive it (an SPC-2 reservation, pending
    /// unit attentions).
    pub fn nexus_lost(&self, nexus: &Nexus) {
        self.shared.reservations.nexus_lost(nexus);
        self.shared.attentions.left(&nexus.port);
    }

    /// A LUN RESET: releases SPC-2 reservations (persistent ones survive, SPC-4 §5.13.1) and
    /// tells every nexus.
    pub fn reset(&self) {
        self.shared.reservations.reset();
        self.shared.attentions.raise_all(attention::RESET_OCCURRED);
    }
}
