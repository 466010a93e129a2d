//! REPORT SUPPORTED OPERATION CODES (SPC-4 §6.35): the table of supported commands, each with
//! its CDB length and usage data (which CDB bits the target looks at: DPO and FUA among
//! them, which initiators check).

use super::cdb::{op, Command};
use super::sense::Sense;
use super::{truncated, Outcome};

/// (operation code, service action, CDB usage data); the CDB length is the usage data's.
type Entry = (u8, Option<u8>, &'static [u8]);

const TABLE: &[Entry] = &[
    (op::TEST_UNIT_READY, None, &[0x00, 0, 0, 0, 0, 0]),
    (op::REQUEST_SENSE, None, &[0x03, 0x01, 0, 0, 0xff, 0]),
    (op::READ_6, None, &[0x08, 0x1f, 0xff, 0xff, 0xff, 0]),
    (op::WRITE_6, None, &[0x0a, 0x1f, 0xff, 0xff, 0xff, 0]),
    (op::INQUIRY, None, &[0x12, 0x01, 0xff, 0xff, 0xff, 0]),
    (op::MODE_SELECT_6, None, &[0x15, 0x11, 0, 0, 0xff, 0]),
    (op::RESERVE_6, None, &[0x16, 0, 0, 0, 0, 0]),
    (op::RELEASE_6, None, &[0x17, 0, 0, 0, 0, 0]),
    (op::MODE_SENSE_6, None, &[0x1a, 0x08, 0xff, 0xff, 0xff, 0]),
    (op::START_STOP_UNIT, None, &[0x1b, 0x01, 0, 0x0f, 0xf7, 0]),
    (op::PREVENT_ALLOW, None, &[0x1e, 0, 0, 0, 0x03, 0]),
    (op::READ_CAPACITY_10, None, &[0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0]),
    (op::READ_10, None, &[0x28, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0]),
    (op::WRITE_10, None, &[0x2a, 0x18, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0]),
    (op::WRITE_VERIFY_10, None, &[0x2e, 0x12, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0]),
    (op::VERIFY_10, None, &[0x2f, 0x16, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0]),
    (op::PRE_FETCH_10, None, &[0x34, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0]),
    (op::SYNCHRONIZE_CACHE_10, None, &[0x35, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0]),
    (op::WRITE_SAME_10, None, &[0x41, 0x08, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0]),
    (op::UNMAP, None, &[0x42, 0, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0]),
    (op::MODE_SELECT_10, None, &[0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0]),
    (op::MODE_SENSE_10, None, &[0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_IN, Some(0), &[0x5e, 0x00, 0, 0, 0, 0, 0, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_IN, Some(1), &[0x5e, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_IN, Some(2), &[0x5e, 0x02, 0, 0, 0, 0, 0, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_IN, Some(3), &[0x5e, 0x03, 0, 0, 0, 0, 0, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_OUT, Some(0), &[0x5f, 0x00, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_OUT, Some(1), &[0x5f, 0x01, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_OUT, Some(2), &[0x5f, 0x02, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_OUT, Some(3), &[0x5f, 0x03, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_OUT, Some(4), &[0x5f, 0x04, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_OUT, Some(5), &[0x5f, 0x05, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0]),
    (op::PERSISTENT_RESERVE_OUT, Some(6), &[0x5f, 0x06, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0]),
    (op::READ_16, None, &[0x88, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0]),
    (
        op::COMPARE_AND_WRITE,
        None,
        &[0x89, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0x1f, 0],
    ),
    (
        op::WRITE_16,
        None,
        &[0x8a, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0],
    ),
    (
        op::WRITE_VERIFY_16,
        None,
        &[0x8e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0],
    ),
    (
        op::VERIFY_16,
        None,
        &[0x8f, 0x16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0],
    ),
    (
        op::PRE_FETCH_16,
        None,
        &[0x90, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0],
    ),
    (
        op::SYNCHRONIZE_CACHE_16,
        None,
        &[0x91, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0],
    ),
    (
        op::WRITE_SAME_16,
        None,
        &[0x93, 0x09, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0],
    ),
    (
        op::SERVICE_ACTION_IN_16,
        Some(op::SA_READ_CAPACITY_16),
        &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0],
    ),
    (
        op::SERVICE_ACTION_IN_16,
        Some(op::SA_GET_LBA_STATUS),
        &[0x9e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
    ),
    (op::REPORT_LUNS, None, &[0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0]),
    (
        op::MAINTENANCE_IN,
        Some(op::SA_REPORT_SUPPORTED_OPCODES),
        &[0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
    ),
    (op::READ_12, None, &[0xa8, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0]),
    (op::WRITE_12, None, &[0xaa, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0]),
    (op::WRITE_VERIFY_12, None, &[0xae, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0]),
    (op::VERIFY_12, None, &[0xaf, 0x16, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0]),
];

// Reporting options.
const ALL: u8 = 0;
const OPCODE: u8 = 1;
const OPCODE_AND_ACTION: u8 = 2;
const EITHER: u8 = 3;

/// A command timeouts descriptor: length 10, no timeouts given.
const TIMEOUTS: [u8; 12] = [0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

pub fn report(cmd: &Command) -> Outcome {
    let Command::ReportOpcodes { options, opcode, action, alloc, timeouts } = *cmd else {
        return Outcome::check(Sense::INVALID_OPCODE);
    };
    let data = match options {
        ALL => all(timeouts),
        OPCODE | OPCODE_AND_ACTION | EITHER => match one(options, opcode, action, timeouts) {
            Ok(data) => data,
            Err(sense) => return Outcome::check(sense),
        },
        _ => return Outcome::check(Sense::cdb_field(2, Some(2))),
    };
    Outcome::good(truncated(data, alloc))
}

fn all(timeouts: bool) -> Vec<u8> {
    let mut descriptors = Vec::new();
    for (code, action, usage) in TABLE {
        descriptors.push(*code);
        descriptors.push(0);
        descriptors.extend_from_slice(&u16::from(action.unwrap_or(0)).to_be_bytes());
        descriptors.push(0);
        descriptors.push(if timeouts { 0x02 } else { 0 } | u8::from(action.is_some()));
        descriptors.extend_from_slice(&(usage.len() as u16).to_be_bytes());
        if timeouts {
            descriptors.extend_from_slice(&TIMEOUTS);
        }
    }
    let mut out = (descriptors.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&descriptors);
    out
}

fn one(options: u8, opcode: u8, action: u16, timeouts: bool) -> Result<Vec<u8>, Sense> {
    let has_actions = TABLE.iter().any(|(c, a, _)| *c == opcode && a.is_some());
    let by_action = match options {
        OPCODE if has_actions => return Err(Sense::cdb_field(2, Some(2))),
        OPCODE_AND_ACTION if !has_actions && TABLE.iter().any(|(c, _, _)| *c == opcode) => {
            return Err(Sense::cdb_field(2, Some(2)));
        }
        OPCODE => false,
        OPCODE_AND_ACTION => true,
        _ => has_actions,
    };
    let entry = TABLE.iter().find(|(c, a, _)| *c == opcode && (!by_action || a.map(u16::from) == Some(action)));
    let mut out = vec![0u8; 2];
    out[1] = if timeouts { 0x80 } else { 0 };
    match entry {
        Some((_, _, usage)) => {
            // SUPPORT 011b: supported as the standard describes.
            out[1] |= 0x03;
            out.extend_from_slice(&(usage.len() as u16).to_be_bytes());
            out.extend_from_slice(usage);
        }
        None => {
            // SUPPORT 001b: not supported; no usage data.
            out[1] |= 0x01;
            out.extend_from_slice(&[0, 0]);
        }
    }
    if timeouts {
        out.extend_from_slice(&TIMEOUTS);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iscsi::scsi::cdb::cdb_len;

    fn report_with(options: u8, opcode: u8, action: u16, timeouts: bool) -> Outcome {
        report(&Command::ReportOpcodes { options, opcode, action, alloc: 65535, timeouts })
    }

    #[test]
    fn usage_data_matches_each_opcodes_cdb_length() {
        for (code, _, usage) in TABLE {
            assert_eq!(usage[0], *code);
            assert_eq!(usage.len(), cdb_len(*code), "opcode {code:#04x}");
        }
    }

    #[test]
    fn all_commands_with_and_without_timeouts() {
        let plain = report_with(ALL, 0, 0, false).data;
        assert_eq!(plain.len(), 4 + 8 * TABLE.len());
        let timed = report_with(ALL, 0, 0, true).data;
        assert_eq!(timed.len(), 4 + 20 * TABLE.len());
        assert_eq!(timed[4 + 5] & 0x02, 0x02, "CTDP");
    }

    #[test]
    fn one_command_by_opcode_or_service_action() {
        let read10 = report_with(OPCODE, op::READ_10, 0, false).data;
        assert_eq!((read10[1], read10[3], read10[4], read10[5] & 0x18), (3, 10, op::READ_10, 0x18));
        assert!(report_with(OPCODE, op::SERVICE_ACTION_IN_16, 0x10, false).sense.is_some());
        assert!(report_with(OPCODE_AND_ACTION, op::READ_10, 0, false).sense.is_some());
        let rc16 = report_with(OPCODE_AND_ACTION, op::SERVICE_ACTION_IN_16, 0x10, false).data;
        assert_eq!((rc16[1], rc16[3]), (3, 16));
        let missing = report_with(OPCODE, 0x04, 0, false).data;
        assert_eq!(missing[1] & 7, 1);
    }
}
