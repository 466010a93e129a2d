//! SCSI status, sense keys and additional sense codes (SPC-4 §4.5), fixed-format sense data,
//! and how device errors become sense.

use crate::device::BlockError;

// Status codes (SAM-5).
pub const GOOD: u8 = 0x00;
pub const CHECK_CONDITION: u8 = 0x02;
pub const RESERVATION_CONFLICT: u8 = 0x18;

// Sense keys.
pub const NO_SENSE: u8 = 0x0;
pub const NOT_READY: u8 = 0x2;
pub const MEDIUM_ERROR: u8 = 0x3;
pub const HARDWARE_ERROR: u8 = 0x4;
pub const ILLEGAL_REQUEST: u8 = 0x5;
pub const UNIT_ATTENTION: u8 = 0x6;
pub const DATA_PROTECT: u8 = 0x7;
pub const ABORTED_COMMAND: u8 = 0xb;
pub const MISCOMPARE: u8 = 0xe;

/// A sense key with its additional sense code and qualifier, and for errors that name a
/// place, the information field (an LBA or an offset) or the field pointer (SKSV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
    pub information: Option<u32>,
    /// (in the CDB rather than parameter data, byte, bit) of an invalid field.
    pub field: Option<(bool, u16, Option<u8>)>,
}

impl Sense {
    pub const fn new(key: u8, asc: u8, ascq: u8) -> Self {
        Self { key, asc, ascq, information: None, field: None }
    }

    pub const NO_SENSE: Sense = Sense::new(NO_SENSE, 0, 0);
    pub const INVALID_OPCODE: Sense = Sense::new(ILLEGAL_REQUEST, 0x20, 0x00);
    pub const LBA_OUT_OF_RANGE: Sense = Sense::new(ILLEGAL_REQUEST, 0x21, 0x00);
    pub const INVALID_FIELD_IN_CDB: Sense = Sense::new(ILLEGAL_REQUEST, 0x24, 0x00);
    pub const LU_NOT_SUPPORTED: Sense = Sense::new(ILLEGAL_REQUEST, 0x25, 0x00);
    pub const INVALID_FIELD_IN_PARAMETERS: Sense = Sense::new(ILLEGAL_REQUEST, 0x26, 0x00);
    pub const PARAMETER_LIST_LENGTH: Sense = Sense::new(ILLEGAL_REQUEST, 0x1a, 0x00);
    pub const INVALID_FIELD_IN_INFORMATION_UNIT: Sense = Sense::new(ILLEGAL_REQUEST, 0x0e, 0x03);
    pub const SAVING_NOT_SUPPORTED: Sense = Sense::new(ILLEGAL_REQUEST, 0x39, 0x00);
    pub const INVALID_RELEASE: Sense = Sense::new(ILLEGAL_REQUEST, 0x26, 0x04);
    pub const WRITE_PROTECTED: Sense = Sense::new(DATA_PROTECT, 0x27, 0x00);
    pub const SPACE_ALLOCATION_FAILED: Sense = Sense::new(DATA_PROTECT, 0x27, 0x07);
    pub const UNRECOVERED_READ_ERROR: Sense = Sense::new(MEDIUM_ERROR, 0x11, 0x00);
    pub const NOT_READY_CAUSE_UNKNOWN: Sense = Sense::new(NOT_READY, 0x04, 0x00);
    pub const INTERNAL_TARGET_FAILURE: Sense = Sense::new(HARDWARE_ERROR, 0x44, 0x00);
    pub const MISCOMPARE_DURING_VERIFY: Sense = Sense::new(MISCOMPARE, 0x1d, 0x00);
    pub const DATA_PHASE_ERROR: Sense = Sense::new(ABORTED_COMMAND, 0x4b, 0x00);

    /// An invalid CDB field at `byte` (and `bit`), which the sense-key specific bytes name.
    pub fn cdb_field(byte: u16, bit: Option<u8>) -> Self {
        Self { field: Some((true, byte, bit)), ..Self::INVALID_FIELD_IN_CDB }
    }

    /// An invalid field of the parameter data at `byte`.
    pub fn parameter_field(byte: u16, bit: Option<u8>) -> Self {
        Self { field: Some((false, byte, bit)), ..Self::INVALID_FIELD_IN_PARAMETERS }
    }

    pub fn with_information(mut self, information: u32) -> Self {
        self.information = Some(information);
        self
    }

    /// Fixed-format sense data (response code 0x70, current error), 18 bytes.
    pub fn fixed(&self) -> [u8; 18] {
        let mut s = [0u8; 18];
        s[0] = 0x70;
        if let Some(info) = self.information {
            s[0] |= 0x80;
            s[3..7].copy_from_slice(&info.to_be_bytes());
        }
        s[2] = self.key & 0x0f;
        s[7] = 10;
        s[12] = self.asc;
        s[13] = self.ascq;
        if let Some((in_cdb, byte, bit)) = self.field {
            s[15] = 0x80 | if in_cdb { 0x40 } else { 0 } | bit.map_or(0, |b| 0x08 | (b & 7));
            s[16..18].copy_from_slice(&byte.to_be_bytes());
        }
        s
    }

    /// Descriptor-format sense data (response code 0x72), for REQUEST SENSE with DESC.
    pub fn descriptor(&self) -> [u8; 8] {
        [0x72, self.key & 0x0f, self.asc, self.ascq, 0, 0, 0, 0]
    }
}

/// The sense a device error is reported with.
pub fn from_device(e: &BlockError) -> Sense {
    match e {
        BlockError::OutOfRange(_) => Sense::LBA_OUT_OF_RANGE,
        BlockError::ReadOnly(_) => Sense::WRITE_PROTECTED,
        BlockError::Corrupt(_) => Sense::UNRECOVERED_READ_ERROR,
        // Storage out of reach is "not ready" (the initiator retries); anything else failed.
        BlockError::Io(_) => Sense::NOT_READY_CAUSE_UNKNOWN,
        BlockError::NoSpace(_) => Sense::SPACE_ALLOCATION_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_format_layout() {
        let s = Sense::LBA_OUT_OF_RANGE.with_information(0x0102_0304).fixed();
        assert_eq!(s[0], 0xf0);
        assert_eq!(s[2], ILLEGAL_REQUEST);
        assert_eq!(s[3..7], [1, 2, 3, 4]);
        assert_eq!((s[7], s[12], s[13]), (10, 0x21, 0));
        let s = Sense::cdb_field(2, Some(5)).fixed();
        assert_eq!(s[15..18], [0x80 | 0x40 | 0x08 | 5, 0, 2]);
        assert_eq!(Sense::parameter_field(300, None).fixed()[15..18], [0x80, 1, 44]);
    }

    #[test]
    fn device_errors_map_to_sense() {
        assert_eq!(from_device(&BlockError::ReadOnly("x".into())), Sense::WRITE_PROTECTED);
        assert_eq!(from_device(&BlockError::Corrupt("x".into())).key, MEDIUM_ERROR);
        assert_eq!(from_device(&BlockError::NoSpace("x".into())), Sense::SPACE_ALLOCATION_FAILED);
        assert_eq!(from_device(&BlockError::Io("x".into())).key, NOT_READY);
        assert_eq!(from_device(&BlockError::OutOfRange("x".into())), Sense::LBA_OUT_OF_RANGE);
    }
}
