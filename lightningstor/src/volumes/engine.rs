//! A volume as a block device: byte ranges cut into extents, each read and written in place in
//! the extent store through the extent map (`map`). What this node serves to an initiator (over
//! NBD, later iSCSI) is one of these, opened on the head (writable) or on a snapshot (read
//! only).
//!
//! Copy-on-write: a write to an extent whose newest version belongs to an older epoch (a
//! snapshot holds it) or to the parent (a clone) first copies the written blocks of that version
//! into a new extent, made durable before the map points at it, so a crash never shows a
//! half-copied extent; an extent nobody wrote is allocated on its first write (thin). Writes
//! hold a shared gate that a snapshot takes exclusively, so a snapshot falls between writes,
//! never inside one.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use photon_block::{BlockDevice, BlockError, BlockFuture, Extent};

use super::extents::{new_id, ExtentError, ExtentStore, BLOCK, EXTENT_BYTES};
use super::map::{ExtentRef, Head, MapStore, Versions};

pub struct VolumeEngine {
    uid: String,
    size: AtomicU64,
    /// The epoch this view reads at (and, for the head, writes).
    epoch: AtomicU32,
    writable: bool,
    head: Mutex<Head>,
    versions: Mutex<Versions>,
    parent: Option<Arc<VolumeEngine>>,
    map: Arc<dyn MapStore>,
    extents: Arc<ExtentStore>,
    /// One allocation (or copy) at a time, so two writes to a new extent make one version.
    allocating: tokio::sync::Mutex<()>,
    /// Writes hold it shared; a snapshot takes it alone.
    gate: tokio::sync::RwLock<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn failed(e: ExtentError) -> BlockError {
    match e {
        ExtentError::Corrupt { .. } => BlockError::Corrupt(e.to_string()),
        ExtentError::OutOfRange { .. } => BlockError::OutOfRange(e.to_string()),
        ExtentError::InvalidId(_) | ExtentError::Io { .. } => BlockError::Io(e.to_string()),
    }
}

/// Runs extent-store work (blocking file I/O) off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, ExtentError> + Send + 'static) -> Result<T, BlockError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(failed),
        Err(e) => Err(BlockError::Io(format!("an extent operation did not finish: {e}"))),
    }
}

/// One extent's share of a byte range: (extent index, offset in the extent, length).
fn pieces(offset: u64, len: u64) -> impl Iterator<Item = (u64, u64, u64)> {
    let end = offset + len;
    let mut at = offset;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let index = at / EXTENT_BYTES;
        let within = at % EXTENT_BYTES;
        let n = (end - at).min(EXTENT_BYTES - within);
        at += n;
        Some((index, within, n))
    })
}

impl VolumeEngine {
    /// Opens volume `uid` of `size` bytes: its head (writable) when `at` is `None`, else its
    /// snapshot of epoch `at` (read only). A volume without a head yet gets one with `parent`
    /// (a clone's source).
    pub async fn open(
        uid: &str,
        size: u64,
        at: Option<u32>,
        parent: Option<super::map::Parent>,
        map: Arc<dyn MapStore>,
        extents: Arc<ExtentStore>,
    ) -> Result<Arc<Self>, BlockError> {
        let (head, versions) = map.load(uid).await?;
        let head = match head {
            Some(head) => head,
            None => {
                let head = Head { epoch: 1, parent };
                map.put_head(uid, &head).await?;
                head
            }
        };
        let parent = match &head.parent {
            // The parent's size no longer matters: what lies past it reads as zeroes.
            Some(p) => Some(Box::pin(Self::open(&p.uid, u64::MAX, Some(p.epoch), None, map.clone(), extents.clone())).await?),
            None => None,
        };
        Ok(Arc::new(Self {
            uid: uid.to_string(),
            size: AtomicU64::new(size),
            epoch: AtomicU32::new(at.unwrap_or(head.epoch)),
            writable: at.is_none(),
            head: Mutex::new(head),
            versions: Mutex::new(versions),
            parent,
            map,
            extents,
            allocating: tokio::sync::Mutex::new(()),
            gate: tokio::sync::RwLock::new(()),
        }))
    }

    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// Grows (or, for a view, sets) the size; what lies past the old end reads as zeroes.
    pub fn set_size(&self, size: u64) {
        self.size.store(size, Ordering::SeqCst);
    }

    /// Takes a snapshot between two writes: everything written so far is flushed and belongs
    /// to the returned epoch, which a read-only view opens; later writes go to the next.
    pub async fn snapshot(&self) -> Result<u32, BlockError> {
        if !self.writable {
            return Err(BlockError::ReadOnly("a snapshot cannot be taken of a snapshot".into()));
        }
        let _alone = self.gate.write().await;
        self.flush_now().await?;
        let taken = self.epoch.load(Ordering::SeqCst);
        let mut head = lock(&self.head).clone();
        head.epoch = taken + 1;
        self.map.put_head(&self.uid, &head).await?;
        *lock(&self.head) = head;
        self.epoch.store(taken + 1, Ordering::SeqCst);
        Ok(taken)
    }

    /// The newest version of extent `index` this view sees: (its epoch, the extent).
    fn lookup(&self, index: u64) -> Option<(u32, ExtentRef)> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        lock(&self.versions).get(&index)?.range(..=epoch).next_back().map(|(e, r)| (*e, r.clone()))
    }

    fn check(&self, offset: u64, len: u64) -> Result<(), BlockError> {
        let size = self.size.load(Ordering::SeqCst);
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(()),
            _ => Err(BlockError::OutOfRange(format!("{len} bytes at {offset} pass the volume's end ({size} bytes)"))),
        }
    }

    fn writable(&self) -> Result<(), BlockError> {
        if self.writable {
            Ok(())
        } else {
            Err(BlockError::ReadOnly("a snapshot is read-only".into()))
        }
    }

    async fn read_piece(&self, index: u64, within: u64, len: u64) -> Result<Bytes, BlockError> {
        if let Some((_, extent)) = self.lookup(index) {
            let store = self.extents.clone();
            return blocking(move || store.read(&extent.id, within, len)).await;
        }
        match &self.parent {
            Some(parent) => Box::pin(parent.read_at(index * EXTENT_BYTES + within, len)).await,
            None => Ok(Bytes::from(vec![0u8; len as usize])),
        }
    }

    /// Reads without the size check (a parent reads through for its clone).
    async fn read_at(&self, offset: u64, len: u64) -> Result<Bytes, BlockError> {
        let mut out = BytesMut::with_capacity(len as usize);
        for (index, within, n) in pieces(offset, len) {
            out.extend_from_slice(&self.read_piece(index, within, n).await?);
        }
        Ok(out.freeze())
    }

    /// The extent `index` of this view's head epoch, made (a copy of what the view sees there,
    /// if anything) when there is none: where a write goes.
    async fn writable_extent(&self, index: u64) -> Result<ExtentRef, BlockError> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if let Some((e, extent)) = self.lookup(index) {
            if e == epoch {
                return Ok(extent);
            }
        }
        let _one = self.allocating.lock().await;
        let seen = self.lookup(index);
        if let Some((e, extent)) = &seen {
            if *e == epoch {
                return Ok(extent.clone());
            }
        }
        let fresh = ExtentRef { id: new_id(), replicas: Vec::new() };
        let copied = match seen {
            Some((_, older)) => self.copy_local(&older.id, &fresh.id).await?,
            None => match &self.parent {
                Some(parent) => self.copy_from_parent(parent, index, &fresh.id).await?,
                None => false,
            },
        };
        if copied {
            // The copy is durable before the map points at it.
            let store = self.extents.clone();
            blocking(move || store.flush()).await?;
        }
        self.map.put_extent(&self.uid, index, epoch, &fresh).await?;
        lock(&self.versions).entry(index).or_default().insert(epoch, fresh.clone());
        Ok(fresh)
    }

    /// Copies the written blocks of extent `from` into `to`; whether anything was copied.
    async fn copy_local(&self, from: &str, to: &str) -> Result<bool, BlockError> {
        let (store, from, to) = (self.extents.clone(), from.to_string(), to.to_string());
        blocking(move || {
            let mut at = 0;
            let mut copied = false;
            for (blocks, written) in store.allocation(&from, 0, EXTENT_BYTES)? {
                let len = blocks * BLOCK;
                if written {
                    let data = store.read(&from, at, len)?;
                    store.write(&to, at, &data)?;
                    copied = true;
                }
                at += len;
            }
            Ok(copied)
        })
        .await
    }

    /// Copies what the parent holds of extent `index` into `to`; whether anything was copied.
    async fn copy_from_parent(&self, parent: &VolumeEngine, index: u64, to: &str) -> Result<bool, BlockError> {
        let start = index * EXTENT_BYTES;
        let mut at = start;
        let mut copied = false;
        for run in parent.extents_at(start, EXTENT_BYTES).await? {
            if !run.hole {
                let data = parent.read_at(at, run.len).await?;
                let (store, to, within) = (self.extents.clone(), to.to_string(), at - start);
                blocking(move || store.write(&to, within, &data)).await?;
                copied = true;
            }
            at += run.len;
        }
        Ok(copied)
    }

    /// Whether this view sees anything of extent `index` (its own version or the parent's).
    async fn sees_data(&self, index: u64) -> Result<bool, BlockError> {
        if self.lookup(index).is_some() {
            return Ok(true);
        }
        match &self.parent {
            Some(parent) => Ok(parent.extents_at(index * EXTENT_BYTES, EXTENT_BYTES).await?.iter().any(|r| !r.hole)),
            None => Ok(false),
        }
    }

    /// Allocation of `[offset, offset + len)` without the size check, covering it exactly.
    async fn extents_at(&self, offset: u64, len: u64) -> Result<Vec<Extent>, BlockError> {
        let mut out: Vec<Extent> = Vec::new();
        let mut push = |e: Extent| match out.last_mut() {
            Some(last) if last.hole == e.hole && last.zero == e.zero => last.len += e.len,
            _ => out.push(e),
        };
        for (index, within, n) in pieces(offset, len) {
            if let Some((_, extent)) = self.lookup(index) {
                let store = self.extents.clone();
                let runs = blocking(move || store.allocation(&extent.id, within, n)).await?;
                // Runs are whole blocks; the first may start before `within`.
                let mut skip = within % BLOCK;
                let mut left = n;
                for (blocks, written) in runs {
                    let bytes = (blocks * BLOCK - skip).min(left);
                    skip = 0;
                    left -= bytes;
                    push(Extent { len: bytes, hole: !written, zero: !written });
                }
            } else if let Some(parent) = &self.parent {
                for e in Box::pin(parent.extents_at(index * EXTENT_BYTES + within, n)).await? {
                    push(e);
                }
            } else {
                push(Extent { len: n, hole: true, zero: true });
            }
        }
        Ok(out)
    }

    async fn flush_now(&self) -> Result<(), BlockError> {
        let store = self.extents.clone();
        blocking(move || store.flush()).await
    }

    /// Zeroes a range, piece by piece: an extent this epoch owns is zeroed in place, one shared
    /// with a snapshot or the parent copied first, one nobody wrote left alone.
    async fn zero(&self, offset: u64, len: u64) -> Result<(), BlockError> {
        let _shared = self.gate.read().await;
        for (index, within, n) in pieces(offset, len) {
            if !self.sees_data(index).await? {
                continue;
            }
            let extent = self.writable_extent(index).await?;
            let store = self.extents.clone();
            blocking(move || store.zero(&extent.id, within, n)).await?;
        }
        Ok(())
    }
}

impl BlockDevice for VolumeEngine {
    fn size(&self) -> u64 {
        self.size.load(Ordering::SeqCst)
    }

    fn read_only(&self) -> bool {
        !self.writable
    }

    fn read(&self, offset: u64, len: u32) -> BlockFuture<'_, Bytes> {
        Box::pin(async move {
            self.check(offset, u64::from(len))?;
            self.read_at(offset, u64::from(len)).await
        })
    }

    fn write(&self, offset: u64, data: Bytes, fua: bool) -> BlockFuture<'_, ()> {
        Box::pin(async move {
            self.writable()?;
            self.check(offset, data.len() as u64)?;
            {
                let _shared = self.gate.read().await;
                let mut done = 0usize;
                for (index, within, n) in pieces(offset, data.len() as u64) {
                    let extent = self.writable_extent(index).await?;
                    let part = data.slice(done..done + n as usize);
                    let store = self.extents.clone();
                    blocking(move || store.write(&extent.id, within, &part)).await?;
                    done += n as usize;
                }
            }
            if fua {
                self.flush_now().await?;
            }
            Ok(())
        })
    }

    fn flush(&self) -> BlockFuture<'_, ()> {
        Box::pin(self.flush_now())
    }

    fn trim(&self, offset: u64, len: u64) -> BlockFuture<'_, ()> {
        Box::pin(async move {
            self.writable()?;
            self.check(offset, len)?;
            self.zero(offset, len).await
        })
    }

    fn write_zeroes(&self, offset: u64, len: u64, _may_trim: bool, fua: bool) -> BlockFuture<'_, ()> {
        Box::pin(async move {
            self.writable()?;
            self.check(offset, len)?;
            self.zero(offset, len).await?;
            if fua {
                self.flush_now().await?;
            }
            Ok(())
        })
    }

    fn extents(&self, offset: u64, len: u64) -> BlockFuture<'_, Vec<Extent>> {
        Box::pin(async move {
            let size = self.size();
            let len = len.min(size.saturating_sub(offset));
            self.check(offset, len)?;
            self.extents_at(offset, len).await
        })
    }
}

#[cfg(test)]
mod tests;
