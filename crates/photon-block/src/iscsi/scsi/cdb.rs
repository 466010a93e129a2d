//! CDBs parsed on receipt (SBC-3, SPC-4): each supported operation code becomes a `Command`
//! with its fields checked against the logical unit's geometry, or the sense the initiator
//! gets instead (invalid opcode, invalid field, LBA out of range, write protected). Pure.

use super::sense::Sense;
use super::{LOGICAL_BLOCK, MAX_COMPARE_AND_WRITE_BLOCKS, MAX_TRANSFER_BLOCKS, MAX_WRITE_SAME_BLOCKS};

pub mod op {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const READ_6: u8 = 0x08;
    pub const WRITE_6: u8 = 0x0a;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SELECT_6: u8 = 0x15;
    pub const RESERVE_6: u8 = 0x16;
    pub const RELEASE_6: u8 = 0x17;
    pub const MODE_SENSE_6: u8 = 0x1a;
    pub const START_STOP_UNIT: u8 = 0x1b;
    pub const PREVENT_ALLOW: u8 = 0x1e;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2a;
    pub const WRITE_VERIFY_10: u8 = 0x2e;
    pub const VERIFY_10: u8 = 0x2f;
    pub const PRE_FETCH_10: u8 = 0x34;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const WRITE_SAME_10: u8 = 0x41;
    pub const UNMAP: u8 = 0x42;
    pub const MODE_SELECT_10: u8 = 0x55;
    pub const MODE_SENSE_10: u8 = 0x5a;
    pub const PERSISTENT_RESERVE_IN: u8 = 0x5e;
    pub const PERSISTENT_RESERVE_OUT: u8 = 0x5f;
    pub const READ_16: u8 = 0x88;
    pub const COMPARE_AND_WRITE: u8 = 0x89;
    pub const WRITE_16: u8 = 0x8a;
    pub const WRITE_VERIFY_16: u8 = 0x8e;
    pub const VERIFY_16: u8 = 0x8f;
    pub const PRE_FETCH_16: u8 = 0x90;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    pub const WRITE_SAME_16: u8 = 0x93;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    pub const REPORT_LUNS: u8 = 0xa0;
    pub const MAINTENANCE_IN: u8 = 0xa3;
    pub const READ_12: u8 = 0xa8;
    pub const WRITE_12: u8 = 0xaa;
    pub const WRITE_VERIFY_12: u8 = 0xae;
    pub const VERIFY_12: u8 = 0xaf;

    // Service actions.
    pub const SA_READ_CAPACITY_16: u8 = 0x10;
    pub const SA_GET_LBA_STATUS: u8 = 0x12;
    pub const SA_REPORT_SUPPORTED_OPCODES: u8 = 0x0c;
}

/// What parsing needs to know about the logical unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Capacity in logical blocks.
    pub blocks: u64,
    pub read_only: bool,
}

/// A parsed, checked command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    TestUnitReady,
    RequestSense {
        descriptor: bool,
        alloc: u32,
    },
    Inquiry {
        evpd: bool,
        page: u8,
        alloc: u32,
    },
    ModeSense {
        ten: bool,
        dbd: bool,
        llbaa: bool,
        control: u8,
        page: u8,
        subpage: u8,
        alloc: u32,
    },
    ModeSelect {
        ten: bool,
        len: u32,
    },
    StartStopUnit,
    PreventAllow {
        prevent: bool,
    },
    ReadCapacity10,
    ReadCapacity16 {
        alloc: u32,
    },
    Read {
        lba: u64,
        blocks: u32,
    },
    Write {
        lba: u64,
        blocks: u32,
        fua: bool,
    },
    /// `bytchk` 0: check the medium; 1: compare with data-out; 3: compare every block with one.
    Verify {
        lba: u64,
        blocks: u32,
        bytchk: u8,
    },
    WriteSame {
        lba: u64,
        blocks: u64,
        unmap: bool,
        ndob: bool,
    },
    Unmap {
        len: u32,
    },
    SynchronizeCache,
    PreFetch,
    GetLbaStatus {
        lba: u64,
        alloc: u32,
    },
    CompareAndWrite {
        lba: u64,
        blocks: u32,
        fua: bool,
    },
    ReportLuns {
        alloc: u32,
    },
    ReportOpcodes {
        options: u8,
        opcode: u8,
        action: u16,
        alloc: u32,
        timeouts: bool,
    },
    PersistentReserveIn {
        action: u8,
        alloc: u32,
    },
    PersistentReserveOut {
        action: u8,
        scope: u8,
        kind: u8,
        len: u32,
    },
    Reserve6,
    Release6,
}

/// How a command touches the medium, for read-only devices and reservations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Never in conflict (identification, status, reservations themselves).
    Free,
    Read,
    Write,
}

impl Command {
    /// The data-out bytes the CDB asks for.
    pub fn data_out_len(&self) -> u32 {
        match *self {
            Command::Write { blocks, .. } => blocks * LOGICAL_BLOCK,
            Command::Verify { blocks, bytchk: 1, .. } => blocks * LOGICAL_BLOCK,
            Command::Verify { bytchk: 3, .. } => LOGICAL_BLOCK,
            Command::WriteSame { ndob: false, .. } => LOGICAL_BLOCK,
            Command::CompareAndWrite { blocks, .. } => 2 * blocks * LOGICAL_BLOCK,
            Command::Unmap { len } | Command::ModeSelect { len, .. } | Command::PersistentReserveOut { len, .. } => len,
            _ => 0,
        }
    }

    pub fn access(&self) -> Access {
        match self {
            Command::Read { .. } | Command::Verify { .. } | Command::GetLbaStatus { .. } | Command::PreFetch => {
                Access::Read
            }
            Command::Write { .. }
            | Command::WriteSame { .. }
            | Command::Unmap { .. }
            | Command::CompareAndWrite { .. }
            | Command::SynchronizeCache
            | Command::ModeSelect { .. }
            | Command::StartStopUnit => Access::Write,
            _ => Access::Free,
        }
    }
}

fn be16(b: &[u8]) -> u32 {
    u32::from(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// The length a CDB with this operation code has (SPC-4 §4.2.5.1's groups).
pub fn cdb_len(opcode: u8) -> usize {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 16,
    }
}

/// Checks `[lba, lba + blocks)` lies on the medium.
fn range(lba: u64, blocks: u64, g: &Geometry) -> Result<(), Sense> {
    match lba.checked_add(blocks) {
        Some(end) if end <= g.blocks => Ok(()),
        _ => Err(Sense::LBA_OUT_OF_RANGE),
    }
}

fn writable(g: &Geometry) -> Result<(), Sense> {
    if g.read_only {
        Err(Sense::WRITE_PROTECTED)
    } else {
        Ok(())
    }
}

/// A read or write transfer: protection field zero (no protection information), length
/// within the maximum, range on the medium.
fn transfer(protect: u8, lba: u64, blocks: u32, protect_byte: u16, g: &Geometry) -> Result<(), Sense> {
    if protect != 0 {
        return Err(Sense::cdb_field(protect_byte, Some(7)));
    }
    if blocks > MAX_TRANSFER_BLOCKS {
        return Err(Sense::INVALID_FIELD_IN_CDB);
    }
    range(lba, u64::from(blocks), g)
}

/// Parses `cdb` (at least as long as its opcode's group says; the transport pads to 16).
pub fn parse(cdb: &[u8], g: &Geometry) -> Result<Command, Sense> {
    let Some(&opcode) = cdb.first() else { return Err(Sense::INVALID_OPCODE) };
    if cdb.len() < cdb_len(opcode) {
        return Err(Sense::INVALID_OPCODE);
    }
    let protect = cdb.get(1).map_or(0, |b| b >> 5);
    let fua = cdb.get(1).is_some_and(|b| b & 0x08 != 0);
    Ok(match opcode {
        op::TEST_UNIT_READY => Command::TestUnitReady,
        op::REQUEST_SENSE => Command::RequestSense { descriptor: cdb[1] & 1 != 0, alloc: u32::from(cdb[4]) },
        op::INQUIRY => {
            let evpd = cdb[1] & 1 != 0;
            if cdb[1] & 0xfe != 0 {
                return Err(Sense::cdb_field(1, None));
            }
            if !evpd && cdb[2] != 0 {
                return Err(Sense::cdb_field(2, None));
            }
            Command::Inquiry { evpd, page: cdb[2], alloc: be16(&cdb[3..]) }
        }
        op::MODE_SENSE_6 | op::MODE_SENSE_10 => {
            let ten = opcode == op::MODE_SENSE_10;
            Command::ModeSense {
                ten,
                dbd: cdb[1] & 0x08 != 0,
                llbaa: ten && cdb[1] & 0x10 != 0,
                control: cdb[2] >> 6,
                page: cdb[2] & 0x3f,
                subpage: cdb[3],
                alloc: if ten { be16(&cdb[7..]) } else { u32::from(cdb[4]) },
            }
        }
        op::MODE_SELECT_6 => Command::ModeSelect { ten: false, len: u32::from(cdb[4]) },
        op::MODE_SELECT_10 => Command::ModeSelect { ten: true, len: be16(&cdb[7..]) },
        op::START_STOP_UNIT => Command::StartStopUnit,
        op::PREVENT_ALLOW => Command::PreventAllow { prevent: cdb[4] & 3 != 0 },
        op::READ_CAPACITY_10 => {
            // Without PMI the LBA must be zero (SBC-3 §5.16.1).
            if cdb[8] & 1 == 0 && be32(&cdb[2..]) != 0 {
                return Err(Sense::cdb_field(2, None));
            }
            Command::ReadCapacity10
        }
        op::SERVICE_ACTION_IN_16 => match cdb[1] & 0x1f {
            op::SA_READ_CAPACITY_16 => Command::ReadCapacity16 { alloc: be32(&cdb[10..]) },
            op::SA_GET_LBA_STATUS => {
                let lba = be64(&cdb[2..]);
                if lba >= g.blocks {
                    return Err(Sense::LBA_OUT_OF_RANGE);
                }
                Command::GetLbaStatus { lba, alloc: be32(&cdb[10..]) }
            }
            _ => return Err(Sense::cdb_field(1, Some(4))),
        },
        op::READ_6 | op::WRITE_6 => {
            let lba = u64::from(be32(&cdb[0..]) & 0x1f_ffff);
            // A transfer length of 0 means 256 blocks for the 6-byte commands.
            let blocks = if cdb[4] == 0 { 256 } else { u32::from(cdb[4]) };
            transfer(0, lba, blocks, 1, g)?;
            if opcode == op::READ_6 {
                Command::Read { lba, blocks }
            } else {
                writable(g)?;
                Command::Write { lba, blocks, fua: false }
            }
        }
        op::READ_10 | op::READ_12 | op::READ_16 => {
            let (lba, blocks) = lba_and_length(opcode, cdb);
            transfer(protect, lba, blocks, 1, g)?;
            Command::Read { lba, blocks }
        }
        op::WRITE_10 | op::WRITE_12 | op::WRITE_16 => {
            let (lba, blocks) = lba_and_length(opcode, cdb);
            transfer(protect, lba, blocks, 1, g)?;
            writable(g)?;
            Command::Write { lba, blocks, fua }
        }
        op::WRITE_VERIFY_10 | op::WRITE_VERIFY_12 | op::WRITE_VERIFY_16 => {
            let (lba, blocks) = lba_and_length(opcode, cdb);
            transfer(protect, lba, blocks, 1, g)?;
            writable(g)?;
            // Verification after a durable write reads back what was written: nothing to compare.
            Command::Write { lba, blocks, fua: true }
        }
        op::VERIFY_10 | op::VERIFY_12 | op::VERIFY_16 => {
            let (lba, blocks) = lba_and_length(opcode, cdb);
            let bytchk = (cdb[1] >> 1) & 3;
            if bytchk == 2 {
                return Err(Sense::cdb_field(1, Some(2)));
            }
            transfer(protect, lba, blocks, 1, g)?;
            Command::Verify { lba, blocks, bytchk }
        }
        op::PRE_FETCH_10 | op::PRE_FETCH_16 => {
            let (lba, blocks) = lba_and_length(opcode, cdb);
            range(lba, u64::from(blocks), g)?;
            Command::PreFetch
        }
        op::SYNCHRONIZE_CACHE_10 | op::SYNCHRONIZE_CACHE_16 => {
            let (lba, blocks) = lba_and_length(opcode, cdb);
            range(lba, u64::from(blocks), g)?;
            Command::SynchronizeCache
        }
        op::WRITE_SAME_10 | op::WRITE_SAME_16 => write_same(opcode, cdb, g)?,
        op::UNMAP => {
            if cdb[1] & 1 != 0 {
                // ANCHOR: anchored blocks are not supported (ANC_SUP is zero).
                return Err(Sense::cdb_field(1, Some(0)));
            }
            writable(g)?;
            Command::Unmap { len: be16(&cdb[7..]) }
        }
        op::COMPARE_AND_WRITE => {
            let lba = be64(&cdb[2..]);
            let blocks = u32::from(cdb[13]);
            if protect != 0 {
                return Err(Sense::cdb_field(1, Some(7)));
            }
            if blocks > MAX_COMPARE_AND_WRITE_BLOCKS {
                return Err(Sense::cdb_field(13, None));
            }
            range(lba, u64::from(blocks), g)?;
            writable(g)?;
            Command::CompareAndWrite { lba, blocks, fua }
        }
        op::REPORT_LUNS => Command::ReportLuns { alloc: be32(&cdb[6..]) },
        op::MAINTENANCE_IN => match cdb[1] & 0x1f {
            op::SA_REPORT_SUPPORTED_OPCODES => Command::ReportOpcodes {
                options: cdb[2] & 7,
                timeouts: cdb[2] & 0x80 != 0,
                opcode: cdb[3],
                action: u16::from_be_bytes([cdb[4], cdb[5]]),
                alloc: be32(&cdb[6..]),
            },
            _ => return Err(Sense::cdb_field(1, Some(4))),
        },
        op::PERSISTENT_RESERVE_IN => Command::PersistentReserveIn { action: cdb[1] & 0x1f, alloc: be16(&cdb[7..]) },
        op::PERSISTENT_RESERVE_OUT => Command::PersistentReserveOut {
            action: cdb[1] & 0x1f,
            scope: cdb[2] >> 4,
            kind: cdb[2] & 0x0f,
            len: be32(&cdb[5..]),
        },
        op::RESERVE_6 => Command::Reserve6,
        op::RELEASE_6 => Command::Release6,
        _ => return Err(Sense::INVALID_OPCODE),
    })
}

/// The LBA and transfer length of the 10, 12 and 16-byte read/write family.
fn lba_and_length(opcode: u8, cdb: &[u8]) -> (u64, u32) {
    match cdb_len(opcode) {
        10 => (u64::from(be32(&cdb[2..])), be16(&cdb[7..])),
        12 => (u64::from(be32(&cdb[2..])), be32(&cdb[6..])),
        _ => (be64(&cdb[2..]), be32(&cdb[10..])),
    }
}

fn write_same(opcode: u8, cdb: &[u8], g: &Geometry) -> Result<Command, Sense> {
    let sixteen = opcode == op::WRITE_SAME_16;
    let lba = if sixteen { be64(&cdb[2..]) } else { u64::from(be32(&cdb[2..])) };
    let blocks = u64::from(if sixteen { be32(&cdb[10..]) } else { be16(&cdb[7..]) });
    let unmap = cdb[1] & 0x08 != 0;
    let anchor = cdb[1] & 0x10 != 0;
    let ndob = sixteen && cdb[1] & 0x01 != 0;
    if cdb[1] >> 5 != 0 {
        return Err(Sense::cdb_field(1, Some(7)));
    }
    if anchor {
        return Err(Sense::cdb_field(1, Some(4)));
    }
    if lba > g.blocks {
        return Err(Sense::LBA_OUT_OF_RANGE);
    }
    // Zero blocks means "to the end of the medium" (WSNZ is zero).
    let blocks = if blocks == 0 { g.blocks - lba } else { blocks };
    range(lba, blocks, g)?;
    if blocks > MAX_WRITE_SAME_BLOCKS {
        return Err(Sense::INVALID_FIELD_IN_CDB);
    }
    writable(g)?;
    Ok(Command::WriteSame { lba, blocks, unmap, ndob })
}

#[cfg(test)]
#[path = "cdb_tests.rs"]
mod tests;
