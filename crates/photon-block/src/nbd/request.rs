//! Transmission requests: the 28-byte header parsed on receipt, and the rules that turn it into
//! a `Command` the device can run or into the error the client gets instead (flags valid for
//! the command, ranges inside the export, writes on a read-only export). Pure, so every rule is
//! tested without a socket.

use super::proto::*;

/// A request header as it came off the wire (magic already checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub flags: u16,
    pub kind: u16,
    pub cookie: u64,
    pub offset: u64,
    pub len: u32,
}

/// The header did not start with `NBD_REQUEST_MAGIC`: the stream is out of step, so the
/// session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request magic {0:#010x} is not NBD_REQUEST_MAGIC")]
pub struct BadMagic(pub u32);

impl RequestHeader {
    pub fn parse(b: &[u8; REQUEST_HEADER_LEN]) -> Result<Self, BadMagic> {
        let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        if magic != REQUEST_MAGIC {
            return Err(BadMagic(magic));
        }
        let mut cookie = [0u8; 8];
        cookie.copy_from_slice(&b[8..16]);
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&b[16..24]);
        Ok(Self {
            flags: u16::from_be_bytes([b[4], b[5]]),
            kind: u16::from_be_bytes([b[6], b[7]]),
            cookie: u64::from_be_bytes(cookie),
            offset: u64::from_be_bytes(offset),
            len: u32::from_be_bytes([b[24], b[25], b[26], b[27]]),
        })
    }
}

/// What the handshake settled that decides which requests are valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRules {
    pub size: u64,
    pub read_only: bool,
    pub structured: bool,
    /// `base:allocation` was selected for this export, so BLOCK_STATUS is allowed.
    pub base_allocation: bool,
}

impl SessionRules {
    /// The transmission flags advertised for this session. Write-side features are left out
    /// of a read-only export, as qemu-nbd does; DF needs structured replies (and costs
    /// nothing: reads are always answered with one content chunk). FAST_ZERO is advertised
    /// and always refused with ENOTSUP, which the spec allows, because the device cannot say
    /// whether zeroing is cheaper than writing.
    pub fn transmission_flags(&self) -> u16 {
        let mut flags = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA | FLAG_CAN_MULTI_CONN | FLAG_SEND_CACHE;
        if self.read_only {
            flags |= FLAG_READ_ONLY;
        } else {
            flags |= FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES | FLAG_SEND_FAST_ZERO;
        }
        if self.structured {
            flags |= FLAG_SEND_DF;
        }
        flags
    }
}

/// A request checked against the session's rules, ready for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Read { offset: u64, len: u32 },
    Write { offset: u64, len: u32, fua: bool },
    Disconnect,
    Flush,
    Trim { offset: u64, len: u32, fua: bool },
    Cache,
    WriteZeroes { offset: u64, len: u32, may_trim: bool, fua: bool },
    BlockStatus { offset: u64, len: u32, req_one: bool },
}

/// Why a request is answered with an error without reaching the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub error: u32,
    pub message: &'static str,
}

fn refuse(error: u32, message: &'static str) -> Result<Command, Refusal> {
    Err(Refusal { error, message })
}

/// `[offset, offset + len)` lies inside an export of `size` bytes (overflow counts as outside).
pub fn in_range(offset: u64, len: u64, size: u64) -> bool {
    offset.checked_add(len).is_some_and(|end| end <= size)
}

/// Checks a request against the rules. Errors follow the spec's advice: past the end is
/// ENOSPC for the two writes and EINVAL otherwise, writes on a read-only export are EPERM,
/// unknown commands and flags are EINVAL.
pub fn check(h: &RequestHeader, rules: &SessionRules) -> Result<Command, Refusal> {
    let allowed = CMD_FLAG_FUA
        | match h.kind {
            CMD_READ if rules.structured => CMD_FLAG_DF,
            CMD_WRITE_ZEROES if !rules.read_only => CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO,
            CMD_WRITE_ZEROES => CMD_FLAG_NO_HOLE,
            CMD_BLOCK_STATUS => CMD_FLAG_REQ_ONE,
            _ => 0,
        };
    if h.flags & !allowed != 0 {
        return refuse(EINVAL, "a flag is not valid for this command");
    }
    let fua = h.flags & CMD_FLAG_FUA != 0;
    let (offset, len) = (h.offset, h.len);
    let inside = in_range(offset, u64::from(len), rules.size);
    match h.kind {
        CMD_READ if len > MAX_PAYLOAD => refuse(EINVAL, "the read is longer than the maximum payload"),
        CMD_READ if !inside => refuse(EINVAL, "the read passes the end of the export"),
        CMD_READ => Ok(Command::Read { offset, len }),
        CMD_WRITE if rules.read_only => refuse(EPERM, "the export is read-only"),
        CMD_WRITE if !inside => refuse(ENOSPC, "the write passes the end of the export"),
        CMD_WRITE => Ok(Command::Write { offset, len, fua }),
        CMD_DISC => Ok(Command::Disconnect),
        CMD_FLUSH => Ok(Command::Flush),
        CMD_TRIM if rules.read_only => refuse(EPERM, "the export is read-only"),
        CMD_TRIM if !inside => refuse(EINVAL, "the trim passes the end of the export"),
        CMD_TRIM => Ok(Command::Trim { offset, len, fua }),
        CMD_CACHE if !inside => refuse(EINVAL, "the cache request passes the end of the export"),
        CMD_CACHE => Ok(Command::Cache),
        CMD_WRITE_ZEROES if rules.read_only => refuse(EPERM, "the export is read-only"),
        CMD_WRITE_ZEROES if h.flags & CMD_FLAG_FAST_ZERO != 0 => refuse(ENOTSUP, "fast zeroing is not supported"),
        CMD_WRITE_ZEROES if !inside => refuse(ENOSPC, "the zeroed range passes the end of the export"),
        CMD_WRITE_ZEROES => Ok(Command::WriteZeroes { offset, len, may_trim: h.flags & CMD_FLAG_NO_HOLE == 0, fua }),
        CMD_BLOCK_STATUS if !rules.base_allocation => {
            refuse(EINVAL, "no metadata context was selected for this export")
        }
        CMD_BLOCK_STATUS if len == 0 => refuse(EINVAL, "block status of an empty range"),
        CMD_BLOCK_STATUS if !inside => refuse(EINVAL, "the block status range passes the end of the export"),
        CMD_BLOCK_STATUS => Ok(Command::BlockStatus { offset, len, req_one: h.flags & CMD_FLAG_REQ_ONE != 0 }),
        _ => refuse(EINVAL, "unknown command"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: SessionRules =
        SessionRules { size: 1 << 20, read_only: false, structured: true, base_allocation: true };

    fn header(kind: u16, flags: u16, offset: u64, len: u32) -> RequestHeader {
        RequestHeader { flags, kind, cookie: 9, offset, len }
    }

    fn error(kind: u16, flags: u16, offset: u64, len: u32, rules: &SessionRules) -> u32 {
        match check(&header(kind, flags, offset, len), rules) {
            Ok(c) => panic!("expected a refusal, got {c:?}"),
            Err(r) => r.error,
        }
    }

    #[test]
    fn parse_reads_big_endian_fields() {
        let mut b = [0u8; REQUEST_HEADER_LEN];
        b[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        b[4..6].copy_from_slice(&CMD_FLAG_FUA.to_be_bytes());
        b[6..8].copy_from_slice(&CMD_WRITE.to_be_bytes());
        b[8..16].copy_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        b[16..24].copy_from_slice(&4096u64.to_be_bytes());
        b[24..].copy_from_slice(&512u32.to_be_bytes());
        let h = RequestHeader::parse(&b).unwrap();
        assert_eq!(h, RequestHeader { flags: 1, kind: 1, cookie: 0x0102_0304_0506_0708, offset: 4096, len: 512 });
        b[0] = 0;
        assert!(RequestHeader::parse(&b).is_err());
    }

    #[test]
    fn ranges_are_overflow_safe() {
        assert!(in_range(0, 1 << 20, 1 << 20));
        assert!(in_range(1 << 20, 0, 1 << 20));
        assert!(!in_range(1, 1 << 20, 1 << 20));
        assert!(!in_range(u64::MAX, 1, u64::MAX));
        assert!(!in_range(u64::MAX - 10, 4096, 1 << 20));
        assert!(!in_range((1 << 20) + 1, 0, 1 << 20));
    }

    #[test]
    fn past_the_end_is_einval_for_reads_and_enospc_for_writes() {
        let end = RULES.size;
        assert_eq!(error(CMD_READ, 0, end - 1, 2, &RULES), EINVAL);
        assert_eq!(error(CMD_READ, 0, u64::MAX, 1, &RULES), EINVAL);
        assert_eq!(error(CMD_WRITE, 0, end, 1, &RULES), ENOSPC);
        assert_eq!(error(CMD_WRITE_ZEROES, 0, u64::MAX - 1, 4, &RULES), ENOSPC);
        assert_eq!(error(CMD_TRIM, 0, end, 1, &RULES), EINVAL);
        assert_eq!(error(CMD_CACHE, 0, end, 1, &RULES), EINVAL);
        assert_eq!(error(CMD_BLOCK_STATUS, 0, end, 1, &RULES), EINVAL);
        assert_eq!(check(&header(CMD_READ, 0, end, 0), &RULES), Ok(Command::Read { offset: end, len: 0 }));
    }

    #[test]
    fn oversized_reads_are_einval() {
        let big = SessionRules { size: u64::MAX, ..RULES };
        assert_eq!(error(CMD_READ, 0, 0, MAX_PAYLOAD + 1, &big), EINVAL);
        assert!(check(&header(CMD_READ, 0, 0, MAX_PAYLOAD), &big).is_ok());
    }

    #[test]
    fn read_only_refuses_every_write_with_eperm() {
        let ro = SessionRules { read_only: true, ..RULES };
        assert_eq!(error(CMD_WRITE, 0, 0, 512, &ro), EPERM);
        assert_eq!(error(CMD_TRIM, 0, 0, 512, &ro), EPERM);
        assert_eq!(error(CMD_WRITE_ZEROES, 0, 0, 512, &ro), EPERM);
        assert!(check(&header(CMD_READ, 0, 0, 512), &ro).is_ok());
        assert!(check(&header(CMD_FLUSH, 0, 0, 0), &ro).is_ok());
    }

    #[test]
    fn flags_are_checked_per_command() {
        assert_eq!(error(CMD_READ, CMD_FLAG_NO_HOLE, 0, 512, &RULES), EINVAL);
        assert_eq!(error(CMD_WRITE, 1 << 9, 0, 512, &RULES), EINVAL);
        let simple = SessionRules { structured: false, ..RULES };
        assert_eq!(error(CMD_READ, CMD_FLAG_DF, 0, 512, &simple), EINVAL);
        assert!(check(&header(CMD_READ, CMD_FLAG_DF | CMD_FLAG_FUA, 0, 512), &RULES).is_ok());
        assert_eq!(error(CMD_WRITE_ZEROES, CMD_FLAG_FAST_ZERO, 0, 512, &RULES), ENOTSUP);
        assert_eq!(
            check(&header(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE | CMD_FLAG_FUA, 0, 512), &RULES),
            Ok(Command::WriteZeroes { offset: 0, len: 512, may_trim: false, fua: true })
        );
        assert_eq!(
            check(&header(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 0, 512), &RULES),
            Ok(Command::BlockStatus { offset: 0, len: 512, req_one: true })
        );
    }

    #[test]
    fn unknown_commands_and_unselected_block_status_are_einval() {
        assert_eq!(error(8, 0, 0, 0, &RULES), EINVAL);
        assert_eq!(error(0xffff, 0, 0, 0, &RULES), EINVAL);
        let no_meta = SessionRules { base_allocation: false, ..RULES };
        assert_eq!(error(CMD_BLOCK_STATUS, 0, 0, 512, &no_meta), EINVAL);
        assert_eq!(error(CMD_BLOCK_STATUS, 0, 0, 0, &RULES), EINVAL);
    }

    #[test]
    fn transmission_flags_follow_the_export() {
        let rw = RULES.transmission_flags();
        assert_eq!(rw & FLAG_READ_ONLY, 0);
        assert_ne!(rw & FLAG_SEND_WRITE_ZEROES, 0);
        assert_ne!(rw & FLAG_SEND_DF, 0);
        let ro = SessionRules { read_only: true, structured: false, ..RULES }.transmission_flags();
        assert_ne!(ro & FLAG_READ_ONLY, 0);
        assert_eq!(ro & (FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES | FLAG_SEND_FAST_ZERO | FLAG_SEND_DF), 0);
        assert_ne!(ro & FLAG_HAS_FLAGS, 0);
    }
}
