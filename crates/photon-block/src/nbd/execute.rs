//! Runs one checked command against the device and builds its reply: simple replies, or with
//! structured replies a single `OFFSET_DATA` chunk for reads, a `BLOCK_STATUS` chunk for
//! `base:allocation`, and an `ERROR` chunk (with the error's text) for failures.

use bytes::{BufMut, Bytes};

use super::proto::*;
use super::request::{Command, Refusal};
use crate::device::{BlockDevice, BlockError, Extent};

/// A reply ready for the wire: a header, and for reads the data after it.
pub struct Reply {
    pub head: Bytes,
    pub data: Option<Bytes>,
}

/// The most descriptors one block status reply carries (the spec asks for at most 2^20);
/// clients ask again from where a short answer stops. This bounds a reply to 512 KiB.
pub const MAX_DESCRIPTORS: usize = 1 << 16;

/// The NBD error value for a device error.
pub fn errno(e: &BlockError) -> u32 {
    match e {
        BlockError::OutOfRange(_) => EINVAL,
        BlockError::ReadOnly(_) => EPERM,
        BlockError::NoSpace(_) => ENOSPC,
        BlockError::Corrupt(_) | BlockError::Io(_) => EIO,
    }
}

/// The reply to a request that failed, in the session's reply style.
pub fn failure(cookie: u64, structured: bool, error: u32, message: &str) -> Reply {
    let head = if structured { error_chunk(cookie, error, message) } else { simple_reply(error, cookie) };
    Reply { head, data: None }
}

pub fn refusal(cookie: u64, structured: bool, r: Refusal) -> Reply {
    failure(cookie, structured, r.error, r.message)
}

fn success(cookie: u64) -> Reply {
    Reply { head: simple_reply(0, cookie), data: None }
}

fn from_result(cookie: u64, structured: bool, result: Result<(), BlockError>) -> Reply {
    match result {
        Ok(()) => success(cookie),
        Err(e) => failure(cookie, structured, errno(&e), &e.to_string()),
    }
}

/// Runs `cmd` (never `Disconnect`, which the reader handles) and builds its reply. `payload`
/// is a write's data, already read off the wire and exactly `len` bytes long.
pub async fn execute(device: &dyn BlockDevice, cookie: u64, cmd: Command, payload: Bytes, structured: bool) -> Reply {
    match cmd {
        Command::Read { offset, len } => read(device, cookie, offset, len, structured).await,
        Command::Write { offset, len, fua } => {
            let result = if len == 0 { Ok(()) } else { device.write(offset, payload, fua).await };
            from_result(cookie, structured, result)
        }
        Command::Flush => from_result(cookie, structured, device.flush().await),
        Command::Trim { offset, len, fua } => {
            let result = async {
                if len > 0 {
                    device.trim(offset, u64::from(len)).await?;
                }
                // The trait's trim has no FUA; a flush gives the same guarantee.
                if fua {
                    device.flush().await?;
                }
                Ok(())
            };
            from_result(cookie, structured, result.await)
        }
        // A hint with no effect on what reads return; nothing to do.
        Command::Cache | Command::Disconnect => success(cookie),
        Command::WriteZeroes { offset, len, may_trim, fua } => {
            let result =
                if len == 0 { Ok(()) } else { device.write_zeroes(offset, u64::from(len), may_trim, fua).await };
            from_result(cookie, structured, result)
        }
        Command::BlockStatus { offset, len, req_one } => match device.extents(offset, u64::from(len)).await {
            Ok(extents) => block_status(cookie, &descriptors(&extents, len, req_one)),
            Err(e) => failure(cookie, structured, errno(&e), &e.to_string()),
        },
    }
}

async fn read(device: &dyn BlockDevice, cookie: u64, offset: u64, len: u32, structured: bool) -> Reply {
    if len == 0 {
        // A content chunk must describe at least one byte, so an empty read ends with NONE.
        let head = if structured {
            chunk_header(REPLY_FLAG_DONE, REPLY_TYPE_NONE, cookie, 0).freeze()
        } else {
            simple_reply(0, cookie)
        };
        return Reply { head, data: None };
    }
    let data = match device.read(offset, len).await {
        Ok(data) if data.len() == len as usize => data,
        // A short or long answer would put the stream out of step; the device is at fault.
        Ok(data) => {
            let message = format!("the device returned {} bytes for a read of {len}", data.len());
            return failure(cookie, structured, EIO, &message);
        }
        Err(e) => return failure(cookie, structured, errno(&e), &e.to_string()),
    };
    let head = if structured {
        let mut head = chunk_header(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, cookie, 8 + len);
        head.put_u64(offset);
        head.freeze()
    } else {
        simple_reply(0, cookie)
    };
    Reply { head, data: Some(data) }
}

/// The `base:allocation` descriptors (length, flags) for a request of `len` bytes: the
/// device's extents clipped to the request, neighbours with equal flags merged, at most
/// `MAX_DESCRIPTORS` (one with `req_one`). A device that reports nothing gets one descriptor
/// with flags 0 ("allocated, contents unknown"), which is always true.
pub fn descriptors(extents: &[Extent], len: u32, req_one: bool) -> Vec<(u32, u32)> {
    let limit = if req_one { 1 } else { MAX_DESCRIPTORS };
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut left = len;
    for e in extents {
        if left == 0 {
            break;
        }
        let n = u32::try_from(e.len).unwrap_or(u32::MAX).min(left);
        if n == 0 {
            continue;
        }
        let flags = if e.hole { STATE_HOLE } else { 0 } | if e.zero { STATE_ZERO } else { 0 };
        let full = out.len() == limit;
        match out.last_mut() {
            Some(last) if last.1 == flags => last.0 += n,
            _ if full => break,
            _ => out.push((n, flags)),
        }
        left -= n;
    }
    if out.is_empty() {
        out.push((len, 0));
    }
    out
}

fn block_status(cookie: u64, descriptors: &[(u32, u32)]) -> Reply {
    let len = 4 + 8 * descriptors.len() as u32;
    let mut head = chunk_header(REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, cookie, len);
    head.reserve(len as usize);
    head.put_u32(BASE_ALLOCATION_ID);
    for (n, flags) in descriptors {
        head.put_u32(*n);
        head.put_u32(*flags);
    }
    Reply { head: head.freeze(), data: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(len: u64, hole: bool) -> Extent {
        Extent { len, hole, zero: hole }
    }

    #[test]
    fn descriptors_clip_merge_and_map_flags() {
        let d = descriptors(&[ext(4096, true), ext(4096, true), ext(8192, false), ext(1 << 40, true)], 20000, false);
        assert_eq!(d, vec![(8192, STATE_HOLE | STATE_ZERO), (8192, 0), (20000 - 16384, STATE_HOLE | STATE_ZERO)]);
    }

    #[test]
    fn req_one_gives_one_descriptor_within_the_request() {
        let d = descriptors(&[ext(1 << 33, false), ext(4096, true)], 1000, true);
        assert_eq!(d, vec![(1000, 0)]);
        let d = descriptors(&[ext(4096, true), ext(4096, false)], 8192, true);
        assert_eq!(d, vec![(4096, STATE_HOLE | STATE_ZERO)]);
    }

    #[test]
    fn empty_or_zero_length_extents_still_answer() {
        assert_eq!(descriptors(&[], 512, false), vec![(512, 0)]);
        assert_eq!(descriptors(&[ext(0, true)], 512, false), vec![(512, 0)]);
    }

    #[test]
    fn descriptors_are_capped() {
        let many: Vec<Extent> = (0..MAX_DESCRIPTORS as u64 + 10).map(|i| ext(1, i % 2 == 0)).collect();
        let d = descriptors(&many, u32::MAX, false);
        assert_eq!(d.len(), MAX_DESCRIPTORS);
    }

    #[test]
    fn block_status_chunk_layout() {
        let r = block_status(5, &[(4096, 3), (512, 0)]);
        let h = &r.head;
        assert_eq!(&h[6..8], &REPLY_TYPE_BLOCK_STATUS.to_be_bytes());
        assert_eq!(&h[16..20], &20u32.to_be_bytes());
        assert_eq!(&h[20..24], &BASE_ALLOCATION_ID.to_be_bytes());
        assert_eq!(&h[24..28], &4096u32.to_be_bytes());
        assert_eq!(&h[28..32], &3u32.to_be_bytes());
        assert_eq!(h.len(), 20 + 20);
    }

    #[test]
    fn device_errors_map_to_nbd_errors() {
        assert_eq!(errno(&BlockError::NoSpace("x".into())), ENOSPC);
        assert_eq!(errno(&BlockError::ReadOnly("x".into())), EPERM);
        assert_eq!(errno(&BlockError::OutOfRange("x".into())), EINVAL);
        assert_eq!(errno(&BlockError::Io("x".into())), EIO);
        assert_eq!(errno(&BlockError::Corrupt("x".into())), EIO);
    }
}
