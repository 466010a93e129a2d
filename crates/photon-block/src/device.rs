//! The device a frontend serves: sized, addressed in bytes, with the operations initiators send
//! (read, write with FUA, flush, trim, write zeroes, allocation status). Implementations check
//! nothing the frontend already checked (ranges inside the device, lengths within limits) but
//! must never panic on what they are given.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

/// What a device operation failed with; frontends map it to their protocol's error (NBD's
/// errno values, iSCSI's sense data).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    /// The range is not inside the device (frontends check first; a device may check again).
    #[error("{0}")]
    OutOfRange(String),
    /// The device cannot be written (a snapshot, a volume attached read-only, a lost lease).
    #[error("{0}")]
    ReadOnly(String),
    /// The data could not be read back intact from any copy.
    #[error("{0}")]
    Corrupt(String),
    /// Storage is unreachable or failed (too few replicas, a disk error).
    #[error("{0}")]
    Io(String),
    /// The device is full (thin provisioning ran out of space).
    #[error("{0}")]
    NoSpace(String),
}

pub type BlockFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BlockError>> + Send + 'a>>;

/// A run of the device's address space and whether it holds data (NBD's `base:allocation`
/// context, iSCSI's GET LBA STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub len: u64,
    /// Not allocated: reads as zeroes and costs no space.
    pub hole: bool,
    /// Reads as zeroes (allocated or not).
    pub zero: bool,
}

pub trait BlockDevice: Send + Sync + 'static {
    /// The size in bytes (a multiple of `block_size`).
    fn size(&self) -> u64;

    /// The preferred block size in bytes (a power of two, 512 to 65536); frontends advertise it
    /// and accept any byte-aligned request all the same.
    fn block_size(&self) -> u32 {
        4096
    }

    /// Whether writes are refused (a snapshot, a read-only attachment).
    fn read_only(&self) -> bool {
        false
    }

    /// `len` bytes at `offset`.
    fn read(&self, offset: u64, len: u32) -> BlockFuture<'_, Bytes>;

    /// Writes `data` at `offset`; with `fua`, durable before it returns.
    fn write(&self, offset: u64, data: Bytes, fua: bool) -> BlockFuture<'_, ()>;

    /// Makes every write that returned before this call durable.
    fn flush(&self) -> BlockFuture<'_, ()>;

    /// The range may be deallocated; it reads as zeroes afterwards.
    fn trim(&self, offset: u64, len: u64) -> BlockFuture<'_, ()>;

    /// The range reads as zeroes afterwards; with `may_trim`, it may also be deallocated.
    fn write_zeroes(&self, offset: u64, len: u64, may_trim: bool, fua: bool) -> BlockFuture<'_, ()>;

    /// Allocation status of `[offset, offset + len)`, as consecutive extents covering at least
    /// the first byte (they may stop short of `len`; never past the device's end).
    fn extents(&self, offset: u64, len: u64) -> BlockFuture<'_, Vec<Extent>>;
}

/// A sparse device in memory, in 4 KiB pages: for frontends' tests, and a reference the
/// storage engine's behaviour is compared with.
pub struct MemDevice {
    size: u64,
    pages: Mutex<BTreeMap<u64, Box<[u8; PAGE as usize]>>>,
    read_only: bool,
}

const PAGE: u64 = 4096;

impl MemDevice {
    pub fn new(size: u64) -> Self {
        Self { size, pages: Mutex::default(), read_only: false }
    }

    pub fn read_only(size: u64) -> Self {
        Self { size, pages: Mutex::default(), read_only: true }
    }

    fn pages(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Box<[u8; PAGE as usize]>>> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check(&self, offset: u64, len: u64) -> Result<(), BlockError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(BlockError::OutOfRange(format!(
                "{len} bytes at {offset} pass the end of the device ({})",
                self.size
            ))),
        }
    }

    fn writable(&self) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly("the device is read-only".into()));
        }
        Ok(())
    }

    /// Copies `data` in at `offset` (checked), allocating pages; zero data on a hole stays a
    /// hole only through `zero`.
    fn put(&self, offset: u64, data: &[u8]) {
        let mut pages = self.pages();
        let mut at = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let page = at / PAGE;
            let within = (at % PAGE) as usize;
            let n = rest.len().min(PAGE as usize - within);
            let entry = pages.entry(page).or_insert_with(|| Box::new([0; PAGE as usize]));
            entry[within..within + n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            at += n as u64;
        }
    }

    /// Zeroes a range: whole pages are dropped, partial ones zeroed in place.
    fn zero(&self, offset: u64, len: u64) {
        let mut pages = self.pages();
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let page = at / PAGE;
            let within = at % PAGE;
            let n = (end - at).min(PAGE - within);
            if n == PAGE {
                pages.remove(&page);
            } else if let Some(p) = pages.get_mut(&page) {
                p[within as usize..(within + n) as usize].fill(0);
            }
            at += n;
        }
    }
}

impl BlockDevice for MemDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read(&self, offset: u64, len: u32) -> BlockFuture<'_, Bytes> {
        Box::pin(async move {
            self.check(offset, u64::from(len))?;
            let mut out = BytesMut::zeroed(len as usize);
            let pages = self.pages();
            let mut at = offset;
            let mut done = 0usize;
            while done < len as usize {
                let page = at / PAGE;
                let within = (at % PAGE) as usize;
                let n = (len as usize - done).min(PAGE as usize - within);
                if let Some(p) = pages.get(&page) {
                    out[done..done + n].copy_from_slice(&p[within..within + n]);
                }
                done += n;
                at += n as u64;
            }
            Ok(out.freeze())
        })
    }

    fn write(&self, offset: u64, data: Bytes, _fua: bool) -> BlockFuture<'_, ()> {
        Box::pin(async move {
            self.writable()?;
            self.check(offset, data.len() as u64)?;
            self.put(offset, &data);
            Ok(())
        })
    }

    fn flush(&self) -> BlockFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn trim(&self, offset: u64, len: u64) -> BlockFuture<'_, ()> {
        Box::pin(async move {
            self.writable()?;
            self.check(offset, len)?;
            self.zero(offset, len);
            Ok(())
        })
    }

    fn write_zeroes(&self, offset: u64, len: u64, _may_trim: bool, _fua: bool) -> BlockFuture<'_, ()> {
        Box::pin(async move {
            self.writable()?;
            self.check(offset, len)?;
            self.zero(offset, len);
            Ok(())
        })
    }

    fn extents(&self, offset: u64, len: u64) -> BlockFuture<'_, Vec<Extent>> {
        Box::pin(async move {
            self.check(offset, len.min(self.size.saturating_sub(offset)))?;
            // `len` is only a hint and may reach past the end (or past u64::MAX).
            let end = offset.saturating_add(len).min(self.size);
            let pages = self.pages();
            let mut out: Vec<Extent> = Vec::new();
            let mut at = offset;
            while at < end {
                let page = at / PAGE;
                let n = (end - at).min(PAGE - at % PAGE);
                let hole = !pages.contains_key(&page);
                match out.last_mut() {
                    Some(last) if last.hole == hole => last.len += n,
                    _ => out.push(Extent { len: n, hole, zero: hole }),
                }
                at += n;
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn extents_tolerate_a_length_past_the_end() {
        let dev = MemDevice::new(8192);
        dev.write(4096, Bytes::from_static(&[1; 10]), false).await.unwrap();
        let extents = dev.extents(0, u64::MAX).await.unwrap();
        assert_eq!(
            extents,
            vec![Extent { len: 4096, hole: true, zero: true }, Extent { len: 4096, hole: false, zero: false }]
        );
        assert_eq!(dev.extents(4096, u64::MAX).await.unwrap(), vec![Extent { len: 4096, hole: false, zero: false }]);
        assert!(dev.extents(8193, 1).await.is_err());
    }

    #[tokio::test]
    async fn zeroing_drops_whole_pages_and_clears_partial_ones() {
        let dev = MemDevice::new(16384);
        dev.write(0, Bytes::from(vec![7u8; 16384]), false).await.unwrap();
        dev.write_zeroes(100, 8192, true, false).await.unwrap();
        let data = dev.read(0, 16384).await.unwrap();
        assert!(data[..100].iter().all(|&b| b == 7));
        assert!(data[100..8292].iter().all(|&b| b == 0));
        assert!(data[8292..].iter().all(|&b| b == 7));
        let extents = dev.extents(0, 16384).await.unwrap();
        assert_eq!(extents[1], Extent { len: 4096, hole: true, zero: true }, "page 1 was dropped");
    }
}
