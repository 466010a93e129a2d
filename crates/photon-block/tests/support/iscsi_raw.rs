//! A raw iSCSI initiator written from RFC 7143, independent of the target's code: builds PDUs
//! byte by byte (including ones no real initiator sends), logs in with chosen keys, runs SCSI
//! commands through R2T and Data-In, and reads whatever comes back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const NOP_OUT: u8 = 0x00;
pub const SCSI_CMD: u8 = 0x01;
pub const TMF_REQ: u8 = 0x02;
pub const LOGIN_REQ: u8 = 0x03;
pub const TEXT_REQ: u8 = 0x04;
pub const DATA_OUT: u8 = 0x05;
pub const LOGOUT_REQ: u8 = 0x06;
pub const SNACK: u8 = 0x10;
pub const NOP_IN: u8 = 0x20;
pub const SCSI_RESP: u8 = 0x21;
pub const TMF_RESP: u8 = 0x22;
pub const LOGIN_RESP: u8 = 0x23;
pub const TEXT_RESP: u8 = 0x24;
pub const DATA_IN: u8 = 0x25;
pub const LOGOUT_RESP: u8 = 0x26;
pub const R2T: u8 = 0x31;
pub const REJECT: u8 = 0x3f;
pub const IMMEDIATE: u8 = 0x40;
pub const FINAL: u8 = 0x80;
pub const READ: u8 = 0x40;
pub const WRITE: u8 = 0x20;
pub const RESERVED: u32 = 0xffff_ffff;

pub const ISID: [u8; 6] = [0x80, 0x12, 0x34, 0x56, 0x00, 0x00];

/// CRC32C, bit by bit (RFC 7143 appendix B), sent least significant byte first.
pub fn crc32c(parts: &[&[u8]]) -> [u8; 4] {
    let mut crc = 0xffff_ffffu32;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    (!crc).to_le_bytes()
}

/// A PDU as the wire carries it: header, data padded to four bytes.
pub fn pdu(mut bhs: [u8; 48], data: &[u8]) -> Vec<u8> {
    let len = data.len() as u32;
    bhs[5..8].copy_from_slice(&len.to_be_bytes()[1..]);
    let mut out = bhs.to_vec();
    out.extend_from_slice(data);
    out.resize(48 + data.len().div_ceil(4) * 4, 0);
    out
}

pub fn put32(h: &mut [u8; 48], at: usize, v: u32) {
    h[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub fn get32(h: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

/// `key=value` pairs, NUL-terminated.
pub fn keys(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(format!("{k}={v}").as_bytes());
        out.push(0);
    }
    out
}

/// A login request header: flags (T, C, CSG, NSG), ISID, TSIH, ITT, CmdSN.
pub fn login_header(flags: u8, tsih: u16, itt: u32, cmd_sn: u32) -> [u8; 48] {
    let mut h = [0u8; 48];
    h[0] = LOGIN_REQ | IMMEDIATE;
    h[1] = flags;
    h[8..14].copy_from_slice(&ISID);
    h[14..16].copy_from_slice(&tsih.to_be_bytes());
    put32(&mut h, 16, itt);
    put32(&mut h, 24, cmd_sn);
    h
}

/// One operational-stage login PDU straight to the full feature phase (T=1, CSG=1, NSG=3).
pub fn login_bytes(target: Option<&str>, extra: &[(&str, &str)], cmd_sn: u32) -> Vec<u8> {
    let mut pairs = vec![("InitiatorName", "iqn.2026-12.io.photoncloud:raw")];
    match target {
        Some(t) => {
            pairs.push(("TargetName", t));
            pairs.push(("SessionType", "Normal"));
        }
        None => pairs.push(("SessionType", "Discovery")),
    }
    pairs.extend_from_slice(extra);
    pdu(login_header(0x80 | 0x04 | 0x03, 0, 0x1000, cmd_sn), &keys(&pairs))
}

/// A SCSI Command PDU: flags beyond F go in `flags` (READ, WRITE), the CDB padded to 16.
pub fn command_header(flags: u8, itt: u32, edtl: u32, cmd_sn: u32, cdb: &[u8]) -> [u8; 48] {
    let mut h = [0u8; 48];
    h[0] = SCSI_CMD;
    h[1] = flags | 0x01;
    put32(&mut h, 16, itt);
    put32(&mut h, 20, edtl);
    put32(&mut h, 24, cmd_sn);
    h[32..32 + cdb.len().min(16)].copy_from_slice(&cdb[..cdb.len().min(16)]);
    h
}

pub fn data_out(itt: u32, ttt: u32, data_sn: u32, offset: u32, last: bool, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 48];
    h[0] = DATA_OUT;
    h[1] = if last { FINAL } else { 0 };
    put32(&mut h, 16, itt);
    put32(&mut h, 20, ttt);
    put32(&mut h, 36, data_sn);
    put32(&mut h, 40, offset);
    pdu(h, data)
}

pub fn read10(lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x28;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

pub fn write10(lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = read10(lba, blocks);
    c[0] = 0x2a;
    c
}

/// A PDU read back: header and data segment.
#[derive(Debug, Clone)]
pub struct Reply {
    pub bhs: [u8; 48],
    pub data: Vec<u8>,
}

impl Reply {
    pub fn opcode(&self) -> u8 {
        self.bhs[0] & 0x3f
    }
}

/// What a SCSI command came back with.
#[derive(Debug, Default)]
pub struct Answer {
    pub status: u8,
    pub sense: Vec<u8>,
    pub data: Vec<u8>,
    pub residual: (u8, u32),
}

impl Answer {
    /// (sense key, ASC, ASCQ) of fixed-format sense.
    pub fn key(&self) -> (u8, u8, u8) {
        match self.sense.get(2..14) {
            Some(s) => (s[0] & 0x0f, s[10], s[11]),
            None => (0, 0, 0),
        }
    }
}

pub struct Raw {
    pub stream: TcpStream,
    pub cmd_sn: u32,
    pub itt: u32,
    pub max_send: usize,
    /// Immediate data allowed per command (FirstBurstLength).
    pub first_burst: usize,
    /// Header and data digests, once negotiated.
    pub digests: (bool, bool),
    /// The session's ISID: with the initiator name, it names the I_T nexus.
    pub isid: [u8; 6],
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Raw { stream, cmd_sn: 1, itt: 1, max_send: 8192, first_burst: 65536, digests: (false, false), isid: ISID }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// A PDU with the digests this connection negotiated.
    pub fn framed(&self, bhs: [u8; 48], data: &[u8]) -> Vec<u8> {
        let plain = pdu(bhs, data);
        let (header, body) = plain.split_at(48);
        let mut out = header.to_vec();
        if self.digests.0 {
            out.extend_from_slice(&crc32c(&[header]));
        }
        out.extend_from_slice(body);
        if self.digests.1 && !body.is_empty() {
            out.extend_from_slice(&crc32c(&[body]));
        }
        out
    }

    /// Reads one PDU, checking digests if negotiated; `None` when the target closes.
    pub async fn read(&mut self) -> Option<Reply> {
        let mut bhs = [0u8; 48];
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut bhs)).await.ok()?.ok()?;
        if self.digests.0 {
            let mut digest = [0u8; 4];
            self.stream.read_exact(&mut digest).await.ok()?;
            assert_eq!(digest, crc32c(&[&bhs]), "header digest");
        }
        let len = u32::from_be_bytes([0, bhs[5], bhs[6], bhs[7]]) as usize;
        let mut data = vec![0u8; len.div_ceil(4) * 4];
        self.stream.read_exact(&mut data).await.ok()?;
        if self.digests.1 && len > 0 {
            let mut digest = [0u8; 4];
            self.stream.read_exact(&mut digest).await.ok()?;
            assert_eq!(digest, crc32c(&[&data]), "data digest");
        }
        data.truncate(len);
        Some(Reply { bhs, data })
    }

    /// Reads one PDU if one comes within `wait`.
    pub async fn read_timeout(&mut self, wait: Duration) -> Option<Reply> {
        tokio::time::timeout(wait, self.read()).await.ok().flatten()
    }

    /// Logs in (one operational PDU) and returns the response's status and keys.
    pub async fn login(&mut self, target: Option<&str>, extra: &[(&str, &str)]) -> (u16, Vec<(String, String)>) {
        let mut extra = extra.to_vec();
        extra.push(("FirstBurstLength", "65536"));
        let mut bytes = login_bytes(target, &extra, self.cmd_sn);
        bytes[8..14].copy_from_slice(&self.isid);
        self.send(&bytes).await;
        let reply = self.read().await.expect("a login response");
        assert_eq!(reply.opcode(), LOGIN_RESP);
        let status = u16::from_be_bytes([reply.bhs[36], reply.bhs[37]]);
        let pairs = reply
            .data
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .filter_map(|s| {
                let s = String::from_utf8_lossy(s);
                s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect::<Vec<_>>();
        if let Some((_, v)) = pairs.iter().find(|(k, _)| k == "MaxRecvDataSegmentLength") {
            self.max_send = v.parse().unwrap_or(8192);
        }
        if let Some((_, v)) = pairs.iter().find(|(k, _)| k == "FirstBurstLength") {
            self.first_burst = v.parse().unwrap_or(0);
        }
        let on = |key: &str| pairs.iter().any(|(k, v)| k == key && v == "CRC32C");
        self.digests = (on("HeaderDigest"), on("DataDigest"));
        (status, pairs)
    }

    /// Runs a command: sends `out` (immediately if it fits, else on R2T), collects Data-In
    /// and status.
    pub async fn command(&mut self, cdb: &[u8], edtl: u32, read: bool, out: &[u8]) -> Answer {
        let itt = self.itt;
        self.itt += 1;
        let flags = FINAL | if read { READ } else { 0 } | if out.is_empty() { 0 } else { WRITE };
        let immediate = out.len().min(self.max_send).min(self.first_burst).min(edtl as usize);
        let h = command_header(flags, itt, edtl, self.cmd_sn, cdb);
        self.cmd_sn += 1;
        let first = self.framed(h, &out[..immediate]);
        self.send(&first).await;
        let mut answer = Answer::default();
        loop {
            let reply = self.read().await.expect("the target answers");
            assert_eq!(get32(&reply.bhs, 16), itt, "{reply:?}");
            match reply.opcode() {
                DATA_IN => {
                    answer.data.extend_from_slice(&reply.data);
                    if reply.bhs[1] & 0x01 != 0 {
                        answer.status = reply.bhs[3];
                        answer.residual = (reply.bhs[1] & 0x06, get32(&reply.bhs, 44));
                        return answer;
                    }
                }
                R2T => {
                    let (ttt, offset, len) = (get32(&reply.bhs, 20), get32(&reply.bhs, 40), get32(&reply.bhs, 44));
                    let mut sent = 0;
                    let mut sn = 0;
                    while sent < len as usize {
                        let n = (len as usize - sent).min(self.max_send);
                        let at = offset as usize + sent;
                        let last = sent + n == len as usize;
                        let plain = data_out(itt, ttt, sn, at as u32, last, &out[at..at + n]);
                        let mut bhs = [0u8; 48];
                        bhs.copy_from_slice(&plain[..48]);
                        let framed = self.framed(bhs, &out[at..at + n]);
                        self.send(&framed).await;
                        sent += n;
                        sn += 1;
                    }
                }
                SCSI_RESP => {
                    answer.status = reply.bhs[3];
                    answer.residual = (reply.bhs[1] & 0x06, get32(&reply.bhs, 44));
                    if reply.data.len() >= 2 {
                        let n = u16::from_be_bytes([reply.data[0], reply.data[1]]) as usize;
                        answer.sense = reply.data[2..(2 + n).min(reply.data.len())].to_vec();
                    }
                    return answer;
                }
                other => panic!("unexpected opcode {other:#x} in answer to a command: {reply:?}"),
            }
        }
    }

    /// Whether the target closes the connection within `wait` (reading and dropping whatever
    /// it still sends).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut sink = vec![0u8; 64 * 1024];
        let drain = async {
            loop {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(wait, drain).await.is_ok()
    }
}
