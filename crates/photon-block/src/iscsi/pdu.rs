//! iSCSI PDUs on the wire (RFC 7143 §11): the 48-byte basic header segment, framing with
//! bounded lengths and optional CRC32C digests, and the target's PDUs as headers the writer
//! stamps with sequence numbers.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::OwnedSemaphorePermit;

use super::digest::Crc32c;

pub const BHS_LEN: usize = 48;
/// The tag value meaning "none" (ITT, TTT).
pub const RESERVED_TAG: u32 = 0xffff_ffff;

// Initiator opcodes.
pub const OP_NOP_OUT: u8 = 0x00;
pub const OP_SCSI_CMD: u8 = 0x01;
pub const OP_TMF_REQ: u8 = 0x02;
pub const OP_LOGIN_REQ: u8 = 0x03;
pub const OP_TEXT_REQ: u8 = 0x04;
pub const OP_DATA_OUT: u8 = 0x05;
pub const OP_LOGOUT_REQ: u8 = 0x06;
pub const OP_SNACK: u8 = 0x10;

// Target opcodes.
pub const OP_NOP_IN: u8 = 0x20;
pub const OP_SCSI_RESP: u8 = 0x21;
pub const OP_TMF_RESP: u8 = 0x22;
pub const OP_LOGIN_RESP: u8 = 0x23;
pub const OP_TEXT_RESP: u8 = 0x24;
pub const OP_DATA_IN: u8 = 0x25;
pub const OP_LOGOUT_RESP: u8 = 0x26;
pub const OP_R2T: u8 = 0x31;
pub const OP_REJECT: u8 = 0x3f;

pub const FLAG_FINAL: u8 = 0x80;
/// Text and Login: more text follows in the next PDU.
pub const FLAG_CONTINUE: u8 = 0x40;
/// The immediate-delivery bit in byte 0 of initiator PDUs.
pub const IMMEDIATE: u8 = 0x40;

// Reject reasons (§11.17.1).
pub const REJECT_PROTOCOL_ERROR: u8 = 0x04;
pub const REJECT_COMMAND_NOT_SUPPORTED: u8 = 0x05;
pub const REJECT_IMMEDIATE_COMMAND: u8 = 0x06;
pub const REJECT_TASK_IN_PROGRESS: u8 = 0x07;
pub const REJECT_INVALID_PDU_FIELD: u8 = 0x09;

/// A basic header segment as received.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Bhs(pub [u8; BHS_LEN]);

impl std::fmt::Debug for Bhs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bhs(op {:#04x} flags {:#04x} itt {:#x})", self.opcode(), self.flags(), self.itt())
    }
}

impl Bhs {
    pub fn opcode(&self) -> u8 {
        self.0[0] & 0x3f
    }

    pub fn immediate(&self) -> bool {
        self.0[0] & IMMEDIATE != 0
    }

    pub fn flags(&self) -> u8 {
        self.0[1]
    }

    pub fn is_final(&self) -> bool {
        self.0[1] & FLAG_FINAL != 0
    }

    pub fn ahs_len(&self) -> usize {
        usize::from(self.0[4]) * 4
    }

    pub fn data_len(&self) -> u32 {
        u32::from_be_bytes([0, self.0[5], self.0[6], self.0[7]])
    }

    pub fn lun(&self) -> [u8; 8] {
        let mut lun = [0u8; 8];
        lun.copy_from_slice(&self.0[8..16]);
        lun
    }

    pub fn itt(&self) -> u32 {
        self.u32(16)
    }

    pub fn u32(&self, at: usize) -> u32 {
        u32::from_be_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }

    pub fn u16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.0[at], self.0[at + 1]])
    }
}

/// A PDU as received: header, additional header segments, and its data segment (padding and
/// digests stripped and checked).
#[derive(Debug, Clone)]
pub struct Pdu {
    pub bhs: Bhs,
    pub ahs: Bytes,
    pub data: Bytes,
}

/// What framing checks: the longest data segment accepted and which digests are present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub max_data: u32,
    pub header_digest: bool,
    pub data_digest: bool,
}

/// A stream that cannot be framed any further; the connection ends.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the connection closed inside a PDU")]
    Truncated,
    #[error("a data segment of {len} bytes exceeds the negotiated {max}")]
    TooLong { len: u32, max: u32 },
    #[error("header digest mismatch")]
    HeaderDigest,
    #[error("data digest mismatch")]
    DataDigest,
}

/// Reads one PDU. `Ok(None)`: the connection closed cleanly between PDUs. The data segment is
/// bounded by `framing.max_data` before anything is allocated for it.
pub async fn read_pdu<R: AsyncRead + Unpin>(rd: &mut R, framing: &Framing) -> Result<Option<Pdu>, FrameError> {
    let mut raw = [0u8; BHS_LEN];
    let mut got = 0;
    while got < BHS_LEN {
        let n = rd.read(&mut raw[got..]).await?;
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(FrameError::Truncated) };
        }
        got += n;
    }
    let bhs = Bhs(raw);
    let len = bhs.data_len();
    if len > framing.max_data {
        return Err(FrameError::TooLong { len, max: framing.max_data });
    }
    let mut ahs = vec![0u8; bhs.ahs_len()];
    read_exact(rd, &mut ahs).await?;
    if framing.header_digest {
        let mut digest = [0u8; 4];
        read_exact(rd, &mut digest).await?;
        if Crc32c::new().update(&raw).update(&ahs).bytes() != digest {
            return Err(FrameError::HeaderDigest);
        }
    }
    let padded = padded(len as usize);
    let mut data = BytesMut::zeroed(padded);
    read_exact(rd, &mut data).await?;
    if framing.data_digest && len > 0 {
        let mut digest = [0u8; 4];
        read_exact(rd, &mut digest).await?;
        if Crc32c::new().update(&data).bytes() != digest {
            return Err(FrameError::DataDigest);
        }
    }
    data.truncate(len as usize);
    Ok(Some(Pdu { bhs, ahs: Bytes::from(ahs), data: data.freeze() }))
}

async fn read_exact<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut [u8]) -> Result<(), FrameError> {
    match rd.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(e.into()),
    }
}

/// `len` rounded up to a multiple of four, as data segments are padded.
pub fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// How the writer fills a PDU's StatSN field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatSn {
    /// A status-bearing PDU: the next StatSN, which then advances.
    Advance,
    /// The next StatSN without advancing it (R2T, unsolicited NOP-In).
    Current,
    /// The field is reserved (Data-In without status).
    Absent,
}

/// A target PDU on its way to the writer, which stamps its data segment length, StatSN,
/// ExpCmdSN and MaxCmdSN.
pub struct Outgoing {
    pub bhs: [u8; BHS_LEN],
    pub data: Bytes,
    pub stat: StatSn,
    /// Answers a non-immediate request, whose CmdSN slot frees up once this is written.
    pub releases_slot: bool,
    /// Memory this PDU's data holds (released once written).
    pub hold: Option<OwnedSemaphorePermit>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outgoing(op {:#04x}, {} bytes, {:?})", self.bhs[0], self.data.len(), self.stat)
    }
}

impl Outgoing {
    pub fn new(bhs: [u8; BHS_LEN], data: Bytes, stat: StatSn) -> Self {
        Self { bhs, data, stat, releases_slot: false, hold: None }
    }

    pub fn releasing(mut self, releases: bool) -> Self {
        self.releases_slot = releases;
        self
    }
}

/// A target header with its opcode and flags set.
pub fn header(opcode: u8, flags: u8) -> [u8; BHS_LEN] {
    let mut h = [0u8; BHS_LEN];
    h[0] = opcode;
    h[1] = flags;
    h
}

pub fn put_u32(h: &mut [u8; BHS_LEN], at: usize, v: u32) {
    h[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub fn put_u16(h: &mut [u8; BHS_LEN], at: usize, v: u16) {
    h[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Sets the 24-bit DataSegmentLength (callers keep segments far below 2^24).
pub fn put_data_len(h: &mut [u8; BHS_LEN], len: usize) {
    let len = (len as u32).min(0x00ff_ffff);
    h[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
}

/// A Reject carrying the offending header (§11.17).
pub fn reject(reason: u8, offending: &Bhs) -> Outgoing {
    let mut h = header(OP_REJECT, FLAG_FINAL);
    h[2] = reason;
    put_u32(&mut h, 16, RESERVED_TAG);
    Outgoing::new(h, Bytes::copy_from_slice(&offending.0), StatSn::Advance)
}

/// The bytes of a PDU as sent: header, header digest, data, padding, data digest.
pub fn encode(bhs: &[u8; BHS_LEN], data: &[u8], header_digest: bool, data_digest: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(BHS_LEN + 8 + padded(data.len()));
    out.extend_from_slice(bhs);
    if header_digest {
        out.extend_from_slice(&Crc32c::new().update(bhs).bytes());
    }
    if !data.is_empty() {
        out.extend_from_slice(data);
        let pad = &[0u8; 3][..padded(data.len()) - data.len()];
        out.extend_from_slice(pad);
        if data_digest {
            out.extend_from_slice(&Crc32c::new().update(data).update(pad).bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing() -> Framing {
        Framing { max_data: 8192, header_digest: false, data_digest: false }
    }

    #[tokio::test]
    async fn reads_a_padded_pdu_and_stops_cleanly_at_eof() {
        let mut h = header(OP_NOP_OUT, FLAG_FINAL);
        put_data_len(&mut h, 5);
        put_u32(&mut h, 16, 7);
        let wire = encode(&h, b"hello", false, false);
        assert_eq!(wire.len(), 48 + 8);
        let mut rd = &wire[..];
        let pdu = read_pdu(&mut rd, &framing()).await.unwrap().unwrap();
        assert_eq!((pdu.bhs.opcode(), pdu.bhs.itt(), &pdu.data[..]), (OP_NOP_OUT, 7, &b"hello"[..]));
        assert!(read_pdu(&mut rd, &framing()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rejects_oversized_truncated_and_corrupt_pdus() {
        let mut h = header(OP_SCSI_CMD, FLAG_FINAL);
        put_data_len(&mut h, 8193);
        let mut rd = &h[..];
        assert!(matches!(read_pdu(&mut rd, &framing()).await, Err(FrameError::TooLong { len: 8193, .. })));
        let mut rd = &h[..20];
        assert!(matches!(read_pdu(&mut rd, &framing()).await, Err(FrameError::Truncated)));

        let digests = Framing { header_digest: true, data_digest: true, ..framing() };
        let mut h = header(OP_NOP_OUT, FLAG_FINAL);
        put_data_len(&mut h, 3);
        let mut wire = encode(&h, b"abc", true, true);
        let mut rd = &wire[..];
        assert_eq!(&read_pdu(&mut rd, &digests).await.unwrap().unwrap().data[..], b"abc");
        wire[49] ^= 1;
        let mut rd = &wire[..];
        assert!(matches!(read_pdu(&mut rd, &digests).await, Err(FrameError::HeaderDigest)));
        wire[49] ^= 1;
        wire[53] ^= 1;
        let mut rd = &wire[..];
        assert!(matches!(read_pdu(&mut rd, &digests).await, Err(FrameError::DataDigest)));
    }
}
