//! A raw NBD client written from the spec, independent of the server's code: it sends what
//! real clients would not (bad flags, pipelined bursts, oversized requests) and reads replies
//! byte by byte.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

pub const OPT_EXPORT_NAME: u32 = 1;
pub const OPT_ABORT: u32 = 2;
pub const OPT_LIST: u32 = 3;
pub const OPT_STARTTLS: u32 = 5;
pub const OPT_INFO: u32 = 6;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;
pub const OPT_SET_META_CONTEXT: u32 = 10;

pub const REP_ACK: u32 = 1;
pub const REP_SERVER: u32 = 2;
pub const REP_INFO: u32 = 3;
pub const REP_META_CONTEXT: u32 = 4;
pub const REP_ERR_UNSUP: u32 = 0x8000_0001;
pub const REP_ERR_POLICY: u32 = 0x8000_0002;
pub const REP_ERR_INVALID: u32 = 0x8000_0003;
pub const REP_ERR_TLS_REQD: u32 = 0x8000_0005;
pub const REP_ERR_UNKNOWN: u32 = 0x8000_0006;

pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_TRIM: u16 = 4;
pub const CMD_CACHE: u16 = 5;
pub const CMD_WRITE_ZEROES: u16 = 6;
pub const CMD_BLOCK_STATUS: u16 = 7;

pub const FLAG_FUA: u16 = 1;
pub const FLAG_NO_HOLE: u16 = 2;
pub const FLAG_REQ_ONE: u16 = 8;
pub const FLAG_FAST_ZERO: u16 = 16;

pub const TFLAG_READ_ONLY: u16 = 1 << 1;

pub const EPERM: u32 = 1;
pub const EINVAL: u32 = 22;
pub const ENOSPC: u32 = 28;
pub const ENOTSUP: u32 = 95;

pub const REPLY_TYPE_NONE: u16 = 0;
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
pub const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
pub const REPLY_TYPE_ERROR: u16 = 0x8001;

/// The `NBD_OPT_GO` / `NBD_OPT_INFO` payload for `name`, asking for `infos`.
pub fn info_payload(name: &str, infos: &[u16]) -> Vec<u8> {
    let mut out = (name.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&(infos.len() as u16).to_be_bytes());
    for i in infos {
        out.extend_from_slice(&i.to_be_bytes());
    }
    out
}

/// The meta-context payload for `name` and `queries`.
pub fn meta_payload(name: &str, queries: &[&str]) -> Vec<u8> {
    let mut out = (name.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&(queries.len() as u32).to_be_bytes());
    for q in queries {
        out.extend_from_slice(&(q.len() as u32).to_be_bytes());
        out.extend_from_slice(q.as_bytes());
    }
    out
}

/// An option as sent on the wire.
pub fn option_bytes(option: u32, data: &[u8]) -> Vec<u8> {
    let mut out = IHAVEOPT.to_be_bytes().to_vec();
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// A request header as sent on the wire.
pub fn request_bytes(flags: u16, kind: u16, cookie: u64, offset: u64, len: u32) -> Vec<u8> {
    let mut out = REQUEST_MAGIC.to_be_bytes().to_vec();
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&cookie.to_be_bytes());
    out.extend_from_slice(&offset.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out
}

/// A structured reply chunk.
#[derive(Debug)]
pub struct Chunk {
    pub flags: u16,
    pub kind: u16,
    pub cookie: u64,
    pub payload: Vec<u8>,
}

impl Chunk {
    pub fn error(&self) -> u32 {
        u32::from_be_bytes(self.payload[..4].try_into().unwrap())
    }
}

pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    /// Connects and completes the greeting with fixed newstyle and no zeroes.
    pub async fn connect(addr: SocketAddr) -> Raw {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut greeting = [0u8; 18];
        stream.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting[..16], b"NBDMAGICIHAVEOPT");
        assert_eq!(u16::from_be_bytes([greeting[16], greeting[17]]) & 1, 1, "fixed newstyle");
        stream.write_all(&3u32.to_be_bytes()).await.unwrap();
        Raw { stream }
    }

    /// Sends an option and reads replies up to the final one (ACK or an error).
    pub async fn option(&mut self, option: u32, data: &[u8]) -> Vec<(u32, Vec<u8>)> {
        self.stream.write_all(&option_bytes(option, data)).await.unwrap();
        let mut replies = Vec::new();
        loop {
            let magic = self.stream.read_u64().await.unwrap();
            assert_eq!(magic, OPT_REPLY_MAGIC);
            assert_eq!(self.stream.read_u32().await.unwrap(), option);
            let kind = self.stream.read_u32().await.unwrap();
            let len = self.stream.read_u32().await.unwrap();
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).await.unwrap();
            replies.push((kind, payload));
            if kind == REP_ACK || kind & 0x8000_0000 != 0 {
                return replies;
            }
        }
    }

    /// Negotiates structured replies (and `base:allocation`) if asked, then GO on `name`;
    /// returns the export's size and transmission flags.
    pub async fn go(&mut self, name: &str, structured: bool) -> (u64, u16) {
        if structured {
            assert_eq!(self.option(OPT_STRUCTURED_REPLY, &[]).await.last().unwrap().0, REP_ACK);
            let replies = self.option(OPT_SET_META_CONTEXT, &meta_payload(name, &["base:allocation"])).await;
            assert_eq!(replies.len(), 2, "one context and the ACK: {replies:?}");
            assert_eq!(replies[0].0, REP_META_CONTEXT);
        }
        let replies = self.option(OPT_GO, &info_payload(name, &[3])).await;
        assert_eq!(replies.last().unwrap().0, REP_ACK, "GO {name}: {replies:?}");
        let export = replies.iter().find(|(kind, p)| *kind == REP_INFO && p[..2] == [0, 0]).expect("NBD_INFO_EXPORT");
        let size = u64::from_be_bytes(export.1[2..10].try_into().unwrap());
        let flags = u16::from_be_bytes(export.1[10..12].try_into().unwrap());
        (size, flags)
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    pub async fn request(&mut self, flags: u16, kind: u16, cookie: u64, offset: u64, len: u32) {
        self.send(&request_bytes(flags, kind, cookie, offset, len)).await;
    }

    /// A simple reply: (error, cookie), then `data_len` bytes of data if the error is 0.
    pub async fn simple_reply(&mut self, data_len: usize) -> (u32, u64, Vec<u8>) {
        assert_eq!(self.stream.read_u32().await.unwrap(), SIMPLE_REPLY_MAGIC);
        let error = self.stream.read_u32().await.unwrap();
        let cookie = self.stream.read_u64().await.unwrap();
        let mut data = vec![0u8; if error == 0 { data_len } else { 0 }];
        self.stream.read_exact(&mut data).await.unwrap();
        (error, cookie, data)
    }

    pub async fn chunk(&mut self) -> Chunk {
        assert_eq!(self.stream.read_u32().await.unwrap(), STRUCTURED_REPLY_MAGIC);
        let flags = self.stream.read_u16().await.unwrap();
        let kind = self.stream.read_u16().await.unwrap();
        let cookie = self.stream.read_u64().await.unwrap();
        let len = self.stream.read_u32().await.unwrap();
        let mut payload = vec![0u8; len as usize];
        self.stream.read_exact(&mut payload).await.unwrap();
        Chunk { flags, kind, cookie, payload }
    }

    /// Whether the server closes the connection within `wait` (reading and discarding
    /// whatever it still sends).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut sink = vec![0u8; 64 * 1024];
        let read_to_end = async {
            loop {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(wait, read_to_end).await.is_ok()
    }
}
