//! A volume as a block device: byte ranges cut into extents, each read and written in place on
//! its replicas (`replicas`) through the extent map (`map`). What this node serves to an
//! initiator (over NBD, later iSCSI) is one of these, opened on the head (writable) or on a
//! snapshot (read only).
//!
//! Copy-on-write: a write to an extent whose newest version belongs to an older epoch (a
//! snapshot holds it) or to the parent (a clone) first copies the written blocks of that version
//! into a new extent, made durable before the map points at it, so a crash never shows a
//! half-copied extent; an extent nobody wrote is allocated on its first write (thin). Writes
//! hold a shared gate that a snapshot (and a repair) takes exclusively, so a snapshot falls
//! between writes, never inside one.
//!
//! Replicas: a write goes to every replica of its extent and is acknowledged once a majority
//! took it; the others are marked stale in the map first, so no read trusts them until the
//! writer's repair (`repair`) has copied the extent to them again. A flush syncs every node
//! written since the last one; a node that cannot is marked stale for what it took.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use photon_block::{BlockDevice, BlockError, BlockFuture, Extent};

use super::extents::{new_id, BLOCK, EXTENT_BYTES};
use super::map::{ExtentRef, Head, MapStore, Versions};
use super::replicas::{ExtentReplicas, Fence, ReplicaError};
use super::lock;

pub struct VolumeEngine {
    uid: String,
    size: AtomicU64,
    /// Copies of each new extent.
    copies: usize,
    /// The epoch this view reads at (and, for the head, writes).
    epoch: AtomicU32,
    writable: bool,
    head: Mutex<Head>,
    versions: Mutex<Versions>,
    parent: Option<Arc<VolumeEngine>>,
    map: Arc<dyn MapStore>,
    replicas: Arc<ExtentReplicas>,
    fence: Mutex<Fence>,
    /// Extents of the head written since the last flush, by index.
    dirty: Mutex<BTreeMap<u64, ExtentRef>>,
    /// One allocation (or copy) at a time, so two writes to a new extent make one version.
    allocating: tokio::sync::Mutex<()>,
    /// Writes hold it shared; a snapshot or a repair takes it alone.
    gate: tokio::sync::RwLock<()>,
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

fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// What a write's replies (from the extent's replicas that are not stale) mean: acknowledged
/// (with the replicas that missed it), or refused.
fn judge(extent: &ExtentRef, results: Vec<(String, Result<(), ReplicaError>)>, total: usize) -> Result<Vec<String>, BlockError> {
    let done = results.iter().filter(|(_, r)| r.is_ok()).count();
    if let Some((_, Err(ReplicaError::Fenced(why)))) = results.iter().find(|(_, r)| matches!(r, Err(ReplicaError::Fenced(_)))) {
        return Err(BlockError::ReadOnly(why.clone()));
    }
    if done < majority(total) {
        let why: Vec<String> = results.iter().filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e:?}"))).collect();
        return Err(BlockError::Io(format!(
            "extent {}: only {done} of {total} replicas took the write (a majority is needed): {}",
            extent.id,
            why.join("; ")
        )));
    }
    Ok(results.into_iter().filter(|(_, r)| r.is_err()).map(|(n, _)| n).collect())
}

impl VolumeEngine {
    /// Opens volume `uid` of `size` bytes with `copies` per extent: its head (writable) when
    /// `at` is `None`, else its snapshot of epoch `at` (read only). A volume without a head yet
    /// gets one with `parent` (a clone's source).
    pub async fn open(
        uid: &str,
        size: u64,
        copies: usize,
        at: Option<u32>,
        parent: Option<super::map::Parent>,
        map: Arc<dyn MapStore>,
        replicas: Arc<ExtentReplicas>,
    ) -> Result<Arc<Self>, BlockError> {
        let (head, versions) = map.load(uid).await?;
        let head = match head {
            Some(head) => head,
            None => {
                let head = Head { epoch: 1, parent, importing: false };
                map.put_head(uid, &head).await?;
                head
            }
        };
        let parent = match &head.parent {
            // The parent's size no longer matters: what lies past it reads as zeroes.
            Some(p) => Some(Box::pin(Self::open(&p.uid, u64::MAX, copies, Some(p.epoch), None, map.clone(), replicas.clone())).await?),
            None => None,
        };
        Ok(Arc::new(Self {
            uid: uid.to_string(),
            size: AtomicU64::new(size),
            copies,
            epoch: AtomicU32::new(at.unwrap_or(head.epoch)),
            writable: at.is_none(),
            head: Mutex::new(head),
            versions: Mutex::new(versions),
            parent,
            map,
            fence: Mutex::new(Fence { volume: uid.to_string(), revision: 0 }),
            replicas,
            dirty: Mutex::default(),
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

    /// The writer lease's revision this node now writes under.
    pub fn set_fence(&self, revision: i64) {
        lock(&self.fence).revision = revision;
    }

    fn fence(&self) -> Fence {
        lock(&self.fence).clone()
    }

    /// Marks the head's import done (the volume may be attached from now on).
    pub async fn finish_import(&self) -> Result<(), BlockError> {
        let mut head = lock(&self.head).clone();
        head.importing = false;
        self.map.put_head(&self.uid, &head).await?;
        *lock(&self.head) = head;
        Ok(())
    }

    pub fn importing(&self) -> bool {
        lock(&self.head).importing
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

    /// Records `nodes` as stale replicas of extent `index` in `epoch` (before a write that
    /// missed them is acknowledged, or once a read found them corrupt).
    async fn mark_stale(&self, index: u64, epoch: u32, extent: &ExtentRef, nodes: &[String]) -> Result<ExtentRef, BlockError> {
        let mut marked = extent.clone();
        for node in nodes {
            if !marked.stale.contains(node) {
                marked.stale.push(node.clone());
            }
        }
        if marked.stale != extent.stale {
            tracing::warn!(volume = %self.uid, index, extent = %extent.id, stale = ?marked.stale, "replicas marked stale until repaired");
            self.map.put_extent(&self.uid, index, epoch, &marked).await?;
            lock(&self.versions).entry(index).or_default().insert(epoch, marked.clone());
        }
        Ok(marked)
    }

    async fn read_piece(&self, index: u64, within: u64, len: u64) -> Result<Bytes, BlockError> {
        if let Some((epoch, extent)) = self.lookup(index) {
            let (data, failed) = self.replicas.read(&extent, within, len).await?;
            let corrupt: Vec<String> =
                failed.into_iter().filter(|(_, e)| matches!(e, ReplicaError::Corrupt(_))).map(|(n, _)| n).collect();
            // The writer marks its own extents; any view may mark those no one writes again.
            if !corrupt.is_empty() && (self.writable || epoch < self.epoch.load(Ordering::SeqCst)) {
                self.mark_stale(index, epoch, &extent, &corrupt).await?;
            }
            return Ok(data);
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
        let id = new_id();
        let fresh = ExtentRef { replicas: self.replicas.place(&id, self.copies), id, stale: Vec::new() };
        let start = index * EXTENT_BYTES;
        let runs = match &seen {
            Some((_, older)) => {
                let runs = self.replicas.allocation(older, 0, EXTENT_BYTES).await?;
                runs.into_iter().map(|(blocks, written)| (blocks * BLOCK, written)).collect()
            }
            None => match &self.parent {
                Some(parent) => parent.extents_at(start, EXTENT_BYTES).await?.into_iter().map(|e| (e.len, !e.hole)).collect(),
                None => Vec::new(),
            },
        };
        let fence = self.fence();
        let mut at = 0;
        let mut copied = false;
        for (len, written) in runs {
            if written {
                let data = match &seen {
                    Some((_, older)) => self.replicas.read(older, at, len).await?.0,
                    None => match &self.parent {
                        Some(parent) => parent.read_at(start + at, len).await?,
                        None => Bytes::new(),
                    },
                };
                self.put(&fresh, at, data, &fence).await?;
                copied = true;
            }
            at += len;
        }
        if copied {
            // The copy is durable before the map points at it.
            for node in &fresh.replicas {
                self.replicas.flush_on(node).await.map_err(|e| BlockError::Io(format!("flushing a copied extent on {node}: {e:?}")))?;
            }
        }
        self.map.put_extent(&self.uid, index, epoch, &fresh).await?;
        lock(&self.versions).entry(index).or_default().insert(epoch, fresh.clone());
        Ok(fresh)
    }

    /// Writes to every replica of a fresh extent, all of which must take it (nothing reads it yet).
    async fn put(&self, extent: &ExtentRef, within: u64, data: Bytes, fence: &Fence) -> Result<(), BlockError> {
        for node in &extent.replicas {
            self.replicas
                .write_on(node, &extent.id, within, data.clone(), fence)
                .await
                .map_err(|e| BlockError::Io(format!("copying into a new extent on {node}: {e:?}")))?;
        }
        Ok(())
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
                let runs = self.replicas.allocation(&extent, within, n).await?;
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

    /// One write (or zeroing) of a piece on every replica of its extent; acknowledged once a
    /// majority took it, the rest marked stale first.
    async fn apply(&self, index: u64, within: u64, data: Option<Bytes>, len: u64) -> Result<(), BlockError> {
        let extent = self.writable_extent(index).await?;
        let epoch = self.epoch.load(Ordering::SeqCst);
        let fence = self.fence();
        let all = self.replicas.nodes(&extent);
        // A stale replica is copied whole when repaired; writing it meanwhile gains nothing.
        let nodes: Vec<String> = all.iter().filter(|n| !extent.stale.contains(n)).cloned().collect();
        let writes = nodes.iter().map(|node| {
            let (data, fence, id) = (data.clone(), &fence, &extent.id);
            async move {
                let result = match data {
                    Some(data) => self.replicas.write_on(node, id, within, data, fence).await,
                    None => self.replicas.zero_on(node, id, within, len, fence).await,
                };
                (node.clone(), result)
            }
        });
        let results = futures_util::future::join_all(writes).await;
        let missed = judge(&extent, results, all.len())?;
        let extent = if missed.is_empty() { extent } else { self.mark_stale(index, epoch, &extent, &missed).await? };
        lock(&self.dirty).insert(index, extent);
        Ok(())
    }

    async fn flush_now(&self) -> Result<(), BlockError> {
        let dirty = std::mem::take(&mut *lock(&self.dirty));
        let mut nodes: Vec<String> =
            dirty.values().flat_map(|e| self.replicas.nodes(e).into_iter().filter(|n| !e.stale.contains(n))).collect();
        nodes.push(self.replicas.node.clone());
        nodes.sort();
        nodes.dedup();
        let flushes = nodes.iter().map(|node| async move { (node.clone(), self.replicas.flush_on(node).await) });
        let failed: Vec<(String, ReplicaError)> = futures_util::future::join_all(flushes)
            .await
            .into_iter()
            .filter_map(|(n, r)| r.err().map(|e| (n, e)))
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        // What a node that could not sync took since the last flush is not trusted from it.
        let epoch = self.epoch.load(Ordering::SeqCst);
        let down: Vec<String> = failed.iter().map(|(n, _)| n.clone()).collect();
        for (index, extent) in &dirty {
            let nodes = self.replicas.nodes(extent);
            let missed: Vec<String> = nodes.iter().filter(|n| down.contains(n)).cloned().collect();
            if missed.is_empty() {
                continue;
            }
            let marked = self.mark_stale(*index, epoch, extent, &missed).await?;
            if nodes.len() - marked.stale.len() < majority(nodes.len()) {
                lock(&self.dirty).extend(dirty.clone());
                return Err(BlockError::Io(format!("a flush reached too few replicas of extent {}: {failed:?}", extent.id)));
            }
        }
        Ok(())
    }

    /// Zeroes a range, piece by piece: an extent this epoch owns is zeroed in place, one shared
    /// with a snapshot or the parent copied first, one nobody wrote left alone.
    async fn zero(&self, offset: u64, len: u64) -> Result<(), BlockError> {
        let _shared = self.gate.read().await;
        for (index, within, n) in pieces(offset, len) {
            if !self.sees_data(index).await? {
                continue;
            }
            self.apply(index, within, None, n).await?;
        }
        Ok(())
    }

    /// Copies each extent with stale replicas back onto them from a good one, between writes;
    /// how many were repaired. Only the writer (who holds the volume's fence) repairs.
    pub async fn repair(&self) -> Result<usize, BlockError> {
        if !self.writable {
            return Ok(0);
        }
        let stale: Vec<(u64, u32, ExtentRef)> = lock(&self.versions)
            .iter()
            .flat_map(|(i, versions)| versions.iter().map(move |(e, r)| (*i, *e, r.clone())))
            .filter(|(_, _, r)| !r.stale.is_empty())
            .collect();
        let mut repaired = 0;
        for (index, epoch, extent) in stale {
            let _alone = self.gate.write().await;
            let fence = self.fence();
            let runs = self.replicas.allocation(&extent, 0, EXTENT_BYTES).await?;
            let mut fixed = Vec::new();
            for node in &extent.stale {
                let mut at = 0;
                let mut ok = true;
                for (blocks, written) in &runs {
                    let len = blocks * BLOCK;
                    let step = if *written {
                        let (data, _) = self.replicas.read(&extent, at, len).await?;
                        self.replicas.write_on(node, &extent.id, at, data, &fence).await
                    } else {
                        self.replicas.zero_on(node, &extent.id, at, len, &fence).await
                    };
                    if let Err(e) = step {
                        tracing::debug!(volume = %self.uid, extent = %extent.id, %node, error = ?e, "repair not possible yet");
                        ok = false;
                        break;
                    }
                    at += len;
                }
                if ok && self.replicas.flush_on(node).await.is_ok() {
                    fixed.push(node.clone());
                }
            }
            if fixed.is_empty() {
                continue;
            }
            let mut mended = extent.clone();
            mended.stale.retain(|n| !fixed.contains(n));
            self.map.put_extent(&self.uid, index, epoch, &mended).await?;
            lock(&self.versions).entry(index).or_default().insert(epoch, mended);
            tracing::info!(volume = %self.uid, index, extent = %extent.id, nodes = ?fixed, "stale replicas repaired");
            repaired += 1;
        }
        Ok(repaired)
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
                    let part = data.slice(done..done + n as usize);
                    self.apply(index, within, Some(part), n).await?;
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
