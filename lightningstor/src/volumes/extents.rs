//! Volume extents on this node's disk: each extent a sparse file of `EXTENT_BYTES` written in
//! place, beside it a file of checksums, one per 4 KiB block (`<id>.sums`, 8 bytes each: a
//! truncated BLAKE3; all zero for a block never written, which reads as zeroes and costs no
//! space). Every read checks the sums of the blocks it touches, so a block that rotted on disk
//! (or was torn by a crash before its write was flushed) is reported, never served; the caller
//! reads it from another replica and writes it back.
//!
//! Writes land in the page cache; `flush` makes every write to the extents written since the
//! last flush durable (fdatasync of data and sums), which is what an initiator's SYNCHRONIZE
//! CACHE or NBD flush asks for. A write of a partial block reads the rest of the block first,
//! under the extent's lock, so its checksum covers what is on disk.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use super::lock;

/// The size of every extent: the unit of allocation, placement and copy-on-write.
pub const EXTENT_BYTES: u64 = 4 << 20;
/// The unit of checksums (and of what a trim frees).
pub const BLOCK: u64 = 4096;
const SUM: u64 = 8;
const BLOCKS: u64 = EXTENT_BYTES / BLOCK;
/// Extent files kept open; the least recently opened ones are closed past this.
const OPEN_FILES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExtentError {
    #[error("extent {id} block {block} is corrupt on this node (its checksum does not match)")]
    Corrupt { id: String, block: u64 },
    #[error("{len} bytes at {offset} are outside an extent ({EXTENT_BYTES} bytes)")]
    OutOfRange { offset: u64, len: u64 },
    #[error("extent id {0:?} is not valid")]
    InvalidId(String),
    #[error("extent storage, {what}: {source}")]
    Io { what: String, source: std::io::Error },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExtentError {
    let what = what.into();
    move |source| ExtentError::Io { what, source }
}

/// A block's checksum; never zero, which means "never written".
fn sum(block: &[u8]) -> [u8; SUM as usize] {
    let hash = blake3::hash(block);
    let mut out = [0u8; SUM as usize];
    out.copy_from_slice(&hash.as_bytes()[..SUM as usize]);
    if out == [0; SUM as usize] {
        out[0] = 1;
    }
    out
}

struct ExtentFile {
    data: File,
    sums: File,
    /// Serialises read-modify-write of partial blocks and their sums.
    lock: Mutex<()>,
}

pub struct ExtentStore {
    dir: PathBuf,
    files: Mutex<HashMap<String, Arc<ExtentFile>>>,
    /// Extents written since their last flush.
    dirty: Mutex<BTreeSet<String>>,
}

pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new random extent id (32 lowercase hex digits).
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // The system's randomness; failing it is failing everything, and ids must not collide.
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        bytes.copy_from_slice(&nanos.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_range(offset: u64, len: u64) -> Result<(), ExtentError> {
    match offset.checked_add(len) {
        Some(end) if end <= EXTENT_BYTES => Ok(()),
        _ => Err(ExtentError::OutOfRange { offset, len }),
    }
}

impl ExtentStore {
    pub fn open(dir: &Path) -> Result<Self, ExtentError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        Ok(Self { dir: dir.to_path_buf(), files: Mutex::default(), dirty: Mutex::default() })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(&id[..2]).join(id)
    }

    /// The extent's files, opened (and with `create`, created) on first use.
    fn file(&self, id: &str, create: bool) -> Result<Option<Arc<ExtentFile>>, ExtentError> {
        if !valid_id(id) {
            return Err(ExtentError::InvalidId(id.to_string()));
        }
        if let Some(f) = lock(&self.files).get(id) {
            return Ok(Some(f.clone()));
        }
        let path = self.path(id);
        let sums_path = path.with_extension("sums");
        if !create && !path.exists() {
            return Ok(None);
        }
        if create {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
            }
        }
        let open = |p: &Path| OpenOptions::new().read(true).write(true).create(create).truncate(false).open(p);
        let data = open(&path).map_err(io(format!("opening {}", path.display())))?;
        let sums = open(&sums_path).map_err(io(format!("opening {}", sums_path.display())))?;
        if create {
            // Sized up front (sparse): reads past what was written see zeroes, not EOF.
            data.set_len(EXTENT_BYTES).map_err(io("sizing an extent"))?;
            sums.set_len(BLOCKS * SUM).map_err(io("sizing an extent's sums"))?;
        }
        let file = Arc::new(ExtentFile { data, sums, lock: Mutex::new(()) });
        let mut files = lock(&self.files);
        if files.len() >= OPEN_FILES {
            // Extents are many and writes cluster: closing any is fine (it reopens on demand).
            let drop: Vec<String> = files.keys().take(OPEN_FILES / 4).cloned().collect();
            for key in drop {
                files.remove(&key);
            }
        }
        Ok(Some(files.entry(id.to_string()).or_insert(file).clone()))
    }

    /// Writes `data` at `offset` within extent `id` (created if new).
    pub fn write(&self, id: &str, offset: u64, data: &[u8]) -> Result<(), ExtentError> {
        check_range(offset, data.len() as u64)?;
        if data.is_empty() {
            return Ok(());
        }
        let file = self.file(id, true)?.ok_or_else(|| ExtentError::InvalidId(id.to_string()))?;
        let _guard = lock(&file.lock);
        let first = offset / BLOCK;
        let end = offset + data.len() as u64;
        let last = (end - 1) / BLOCK;
        let start = first * BLOCK;
        let mut buf = BytesMut::zeroed(((last - first + 1) * BLOCK) as usize);
        // Partial first or last block: the rest of it comes from disk (verified).
        if !offset.is_multiple_of(BLOCK) {
            let old = read_blocks(id, &file, first, 1)?;
            buf[..BLOCK as usize].copy_from_slice(&old);
        }
        if !end.is_multiple_of(BLOCK) && (last != first || offset.is_multiple_of(BLOCK)) {
            let old = read_blocks(id, &file, last, 1)?;
            let at = ((last - first) * BLOCK) as usize;
            buf[at..at + BLOCK as usize].copy_from_slice(&old);
        }
        let at = (offset - start) as usize;
        buf[at..at + data.len()].copy_from_slice(data);
        file.data.write_all_at(&buf, start).map_err(io(format!("writing extent {id}")))?;
        let sums: Vec<u8> = buf.chunks(BLOCK as usize).flat_map(sum).collect();
        file.sums.write_all_at(&sums, first * SUM).map_err(io(format!("writing extent {id}'s sums")))?;
        lock(&self.dirty).insert(id.to_string());
        Ok(())
    }

    /// `len` bytes at `offset` within extent `id`, verified; a missing extent reads as zeroes.
    pub fn read(&self, id: &str, offset: u64, len: u64) -> Result<Bytes, ExtentError> {
        check_range(offset, len)?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        let Some(file) = self.file(id, false)? else { return Ok(Bytes::from(vec![0u8; len as usize])) };
        let first = offset / BLOCK;
        let last = (offset + len - 1) / BLOCK;
        let blocks = {
            let _guard = lock(&file.lock);
            read_blocks(id, &file, first, last - first + 1)?
        };
        let at = (offset - first * BLOCK) as usize;
        Ok(blocks.freeze().slice(at..at + len as usize))
    }

    /// Zeroes `[offset, offset + len)`: whole blocks are freed (a hole, sum cleared), partial
    /// ones written with zeroes.
    pub fn zero(&self, id: &str, offset: u64, len: u64) -> Result<(), ExtentError> {
        check_range(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let Some(file) = self.file(id, false)? else { return Ok(()) };
        let end = offset + len;
        let whole_first = offset.div_ceil(BLOCK);
        let whole_end = end / BLOCK;
        if !offset.is_multiple_of(BLOCK) {
            let upto = end.min(whole_first * BLOCK);
            self.write(id, offset, &vec![0u8; (upto - offset) as usize])?;
        }
        if whole_end > whole_first {
            let _guard = lock(&file.lock);
            punch(&file.data, whole_first * BLOCK, (whole_end - whole_first) * BLOCK)
                .map_err(io(format!("freeing blocks of extent {id}")))?;
            let zeros = vec![0u8; ((whole_end - whole_first) * SUM) as usize];
            file.sums.write_all_at(&zeros, whole_first * SUM).map_err(io(format!("clearing extent {id}'s sums")))?;
        }
        if !end.is_multiple_of(BLOCK) && whole_end >= whole_first {
            let from = (whole_end * BLOCK).max(offset);
            if from < end {
                self.write(id, from, &vec![0u8; (end - from) as usize])?;
            }
        }
        lock(&self.dirty).insert(id.to_string());
        Ok(())
    }

    /// Which blocks of `[offset, offset + len)` were ever written (rounded out to blocks):
    /// consecutive runs of (blocks, written).
    pub fn allocation(&self, id: &str, offset: u64, len: u64) -> Result<Vec<(u64, bool)>, ExtentError> {
        check_range(offset, len)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let first = offset / BLOCK;
        let last = (offset + len - 1) / BLOCK;
        let count = last - first + 1;
        let Some(file) = self.file(id, false)? else { return Ok(vec![(count, false)]) };
        let mut sums = vec![0u8; (count * SUM) as usize];
        file.sums.read_exact_at(&mut sums, first * SUM).map_err(io(format!("reading extent {id}'s sums")))?;
        let mut runs: Vec<(u64, bool)> = Vec::new();
        for s in sums.chunks(SUM as usize) {
            let written = s.iter().any(|b| *b != 0);
            match runs.last_mut() {
                Some((n, w)) if *w == written => *n += 1,
                _ => runs.push((1, written)),
            }
        }
        Ok(runs)
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), ExtentError> {
        let dirty: Vec<String> = std::mem::take(&mut *lock(&self.dirty)).into_iter().collect();
        for id in &dirty {
            if let Some(file) = self.file(id, false)? {
                let synced = file.data.sync_data().and_then(|()| file.sums.sync_data());
                if let Err(e) = synced {
                    // Still dirty: the next flush tries again.
                    lock(&self.dirty).extend(dirty.iter().cloned());
                    return Err(io(format!("flushing extent {id}"))(e));
                }
            }
        }
        Ok(())
    }

    /// Removes extent `id` from this node; gone already is fine.
    pub fn delete(&self, id: &str) -> Result<(), ExtentError> {
        if !valid_id(id) {
            return Err(ExtentError::InvalidId(id.to_string()));
        }
        lock(&self.files).remove(id);
        lock(&self.dirty).remove(id);
        let path = self.path(id);
        for p in [path.with_extension("sums"), path] {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(format!("removing {}", p.display()))(e)),
            }
        }
        Ok(())
    }
}

/// `count` whole blocks from `first`, each checked against its sum.
fn read_blocks(id: &str, file: &ExtentFile, first: u64, count: u64) -> Result<BytesMut, ExtentError> {
    let mut buf = BytesMut::zeroed((count * BLOCK) as usize);
    file.data.read_exact_at(&mut buf, first * BLOCK).map_err(io(format!("reading extent {id}")))?;
    let mut sums = vec![0u8; (count * SUM) as usize];
    file.sums.read_exact_at(&mut sums, first * SUM).map_err(io(format!("reading extent {id}'s sums")))?;
    for (i, (block, stored)) in buf.chunks(BLOCK as usize).zip(sums.chunks(SUM as usize)).enumerate() {
        let ok = if stored.iter().all(|b| *b == 0) { block.iter().all(|b| *b == 0) } else { sum(block) == stored };
        if !ok {
            return Err(ExtentError::Corrupt { id: id.to_string(), block: first + i as u64 });
        }
    }
    Ok(buf)
}

/// Frees `[offset, offset + len)` of `file`, keeping its size (reads see zeroes).
fn punch(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; fallocate does not touch memory.
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EOPNOTSUPP) {
        // A filesystem without holes: zeroes serve the same reads.
        return file.write_all_at(&vec![0u8; len as usize], offset);
    }
    Err(error)
}

#[cfg(test)]
mod tests;
