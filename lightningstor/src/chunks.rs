//! Object data on this node's disk: an object's bytes are cut into chunks of at most
//! `chunk_bytes` (`cut`), each its own file under `<dir>/<first two hex digits of its id>/<id>`.
//! A chunk is written to a temporary file, fsynced, renamed into place and its directory fsynced
//! before the write returns, so an acknowledged write survives power loss. Every chunk's checksum
//! is returned to the caller (it goes into the object's metadata) and checked on every read, so
//! a chunk that rotted on disk is detected, never served.
//!
//! Memory stays bounded by a few chunks per write in progress (`IN_FLIGHT` being stored and one
//! being cut), whatever the object's size.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::direct_io::BufferPool;

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk {0} is missing from this node")]
    Missing(String),
    #[error("chunk {id} is corrupt: its checksum is {found}, not {expected}")]
    Corrupt { id: String, expected: String, found: String },
    #[error("chunk id {0:?} is not valid")]
    InvalidId(String),
    #[error("reading the object's data: {0}")]
    Source(std::io::Error),
    #[error("chunk storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The chunk files under `dir` last modified before `cutoff`: (id, length). Files that are not
/// chunks (half-written `.tmp` ones, anything else) are left out.
pub fn files_older_than(dir: &Path, cutoff: std::time::SystemTime) -> std::io::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir)? {
        let shard = shard?.path();
        if !shard.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&shard)? {
            let file = file?;
            let Some(id) = file.file_name().to_str().map(str::to_string) else { continue };
            if !ChunkStore::valid_id(&id) {
                continue;
            }
            // A file deleted meanwhile (the trash, a DELETE) is simply not listed.
            let Ok(meta) = file.metadata() else { continue };
            if meta.is_file() && meta.modified()? < cutoff {
                out.push((id, meta.len()));
            }
        }
    }
    Ok(out)
}

/// Where one chunk of an object is, and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: String,
    pub len: u64,
    /// The data's checksum: `b3:<hex BLAKE3>`, or the hex SHA-256 chunks had at first.
    #[serde(rename = "sum", alias = "sha256")]
    pub sum: String,
    /// The nodes meant to hold a copy (`replication`); empty: this node alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
}

pub struct ChunkStore {
    dir: PathBuf,
    chunk_bytes: usize,
    rng: SystemRandom,
    /// Read buffers, reused (`direct_io`).
    buffers: Arc<BufferPool>,
}

/// Read buffers kept for reuse when no read needs them (each `chunk_bytes`).
const IDLE_READ_BUFFERS: usize = 8;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The checksum new chunks get: BLAKE3, several times faster than SHA-256 and as strong.
pub fn checksum(bytes: &[u8]) -> String {
    format!("b3:{}", blake3::hash(bytes).to_hex())
}

/// `checksum` of `bytes`, on a blocking thread when they are large: BLAKE3 of an 8 MiB chunk
/// takes over a millisecond, which on the task receiving an upload stalls its next bytes.
pub async fn checksum_aside(bytes: Vec<u8>) -> Result<(String, Vec<u8>), ChunkError> {
    if bytes.len() < 256 << 10 {
        return Ok((checksum(&bytes), bytes));
    }
    tokio::task::spawn_blocking(move || (checksum(&bytes), bytes))
        .await
        .map_err(|e| ChunkError::Io(std::io::Error::other(format!("chunk hasher: {e}"))))
}

/// Whether `bytes` match the checksum `sum` (either kind); answers the checksum found.
pub fn verify_sum(sum: &str, bytes: &[u8]) -> (bool, String) {
    let found = if sum.starts_with("b3:") { checksum(bytes) } else { sha256(bytes) };
    (found == sum, found)
}

/// Hex SHA-256 of `bytes` (the checksum of the first chunks).
fn sha256(bytes: &[u8]) -> String {
    let mut context = Context::new(&SHA256);
    context.update(bytes);
    hex(context.finish().as_ref())
}

impl ChunkStore {
    /// Opens (creating) the store in `dir`, removing temporary files a crash left behind.
    pub fn open(dir: &Path, chunk_bytes: usize) -> Result<Self, ChunkError> {
        std::fs::create_dir_all(dir)?;
        let mut stale = 0;
        for shard in std::fs::read_dir(dir)? {
            let shard = shard?.path();
            if !shard.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&shard)? {
                let path = file?.path();
                if path.extension().is_some_and(|e| e == "tmp") {
                    std::fs::remove_file(&path)?;
                    stale += 1;
                }
            }
        }
        if stale > 0 {
            tracing::info!(stale, dir = %dir.display(), "removed chunks a crash left half-written");
        }
        let chunk_bytes = chunk_bytes.max(1);
        Ok(Self {
            dir: dir.to_path_buf(),
            chunk_bytes,
            rng: SystemRandom::new(),
            buffers: BufferPool::new(chunk_bytes, IDLE_READ_BUFFERS),
        })
    }

    fn path(&self, id: &str) -> Result<PathBuf, ChunkError> {
        if !Self::valid_id(id) {
            return Err(ChunkError::InvalidId(id.to_string()));
        }
        Ok(self.dir.join(&id[..2]).join(id))
    }

    /// Where the chunk files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn chunk_bytes(&self) -> usize {
        self.chunk_bytes
    }

    /// Writes everything `source` yields as chunks, durably; answers them in order. On an error
    /// the chunks already written are removed (nothing of a failed write stays).
    pub async fn write(&self, source: &mut (impl AsyncRead + Unpin)) -> Result<Vec<ChunkRef>, ChunkError> {
        let pieces = futures_util::stream::unfold(source, |source| async move {
            let mut piece = vec![0u8; 64 << 10];
            match source.read(&mut piece).await {
                Ok(0) => None,
                Ok(n) => {
                    piece.truncate(n);
                    Some((Ok(Bytes::from(piece)), source))
                }
                Err(e) => Some((Err(e), source)),
            }
        });
        match cut(pieces, self.chunk_bytes, |bytes| self.put(bytes)).await {
            Ok(chunks) => Ok(chunks),
            Err((e, written)) => {
                self.remove(&written).await;
                Err(e)
            }
        }
    }

    /// A new random chunk id.
    pub fn new_id(&self) -> Result<String, ChunkError> {
        let mut id = [0u8; 16];
        self.rng.fill(&mut id).map_err(|_| std::io::Error::other("no randomness for a chunk id"))?;
        Ok(hex(&id))
    }

    /// Whether `id` names a chunk (32 lowercase hex digits; ids from the network are checked).
    pub fn valid_id(id: &str) -> bool {
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    }

    /// Stores one chunk durably under a new id.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<ChunkRef, ChunkError> {
        let (sum, bytes) = checksum_aside(bytes).await?;
        let chunk = ChunkRef { id: self.new_id()?, len: bytes.len() as u64, sum, replicas: Vec::new() };
        self.store(&chunk, Bytes::from(bytes)).await?;
        Ok(chunk)
    }

    /// Stores `bytes` durably as `chunk` (a replica sent by another node, or a repair), once
    /// they match its length and checksum.
    pub async fn put_as(&self, chunk: &ChunkRef, bytes: Bytes) -> Result<(), ChunkError> {
        let (good, found) = verify_sum(&chunk.sum, &bytes);
        if !good || bytes.len() as u64 != chunk.len {
            return Err(ChunkError::Corrupt { id: chunk.id.clone(), expected: chunk.sum.clone(), found });
        }
        self.store(chunk, bytes).await
    }

    /// Stores `bytes` durably as `chunk`, whose hash the caller computed from these very bytes.
    pub async fn store(&self, chunk: &ChunkRef, bytes: Bytes) -> Result<(), ChunkError> {
        let path = self.path(&chunk.id)?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let shard = path.parent().ok_or_else(|| std::io::Error::other("chunk path has no directory"))?;
            std::fs::create_dir_all(shard)?;
            let tmp = path.with_extension("tmp");
            crate::direct_io::write_durably(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(shard)?.sync_all()
        })
        .await
        .map_err(|e| std::io::Error::other(format!("chunk writer: {e}")))??;
        Ok(())
    }

    /// Starts reading `chunk` into the page cache without waiting (`POSIX_FADV_WILLNEED`).
    pub fn prefetch(&self, chunk: &ChunkRef) {
        let Ok(path) = self.path(&chunk.id) else { return };
        tokio::task::spawn_blocking(move || crate::direct_io::prefetch(&path));
    }

    /// Reads one chunk and checks it against its checksum.
    pub async fn get(&self, chunk: &ChunkRef) -> Result<Bytes, ChunkError> {
        let path = self.path(&chunk.id)?;
        let pool = self.buffers.clone();
        let wanted = chunk.clone();
        // Read and hashed on a blocking thread: hashing 8 MiB would stall the async workers.
        tokio::task::spawn_blocking(move || {
            let bytes = match crate::direct_io::read_file(&path, &pool) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ChunkError::Missing(wanted.id)),
                Err(e) => return Err(e.into()),
            };
            let (good, found) = verify_sum(&wanted.sum, &bytes);
            if !good || bytes.len() as u64 != wanted.len {
                return Err(ChunkError::Corrupt { id: wanted.id, expected: wanted.sum, found });
            }
            Ok(bytes)
        })
        .await
        .map_err(|e| std::io::Error::other(format!("chunk reader: {e}")))?
    }

    /// Deletes chunks; one already gone is fine.
    pub async fn remove(&self, chunks: &[ChunkRef]) {
        for chunk in chunks {
            let Ok(path) = self.path(&chunk.id) else { continue };
            if let Err(e) = tokio::fs::remove_file(&path).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(chunk = %chunk.id, error = %e, "could not delete a chunk");
                }
            }
        }
    }
}

/// Cuts the pieces of `source` into chunks of `size` bytes, handing each chunk to `store`;
/// answers the chunks in order. On an error
/// (the source's included) answers it with the chunks already stored, for the caller to remove.
pub async fn cut<F, Fut>(
    source: impl Stream<Item = std::io::Result<Bytes>>,
    size: usize,
    mut store: F,
) -> Result<Vec<ChunkRef>, (ChunkError, Vec<ChunkRef>)>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Result<ChunkRef, ChunkError>>,
{
    let size = size.max(1);
    let mut source = std::pin::pin!(source);
    let mut written = Vec::new();
    // Up to `IN_FLIGHT` chunks are being stored while the next one is read, so the network,
    // the hashing and the disks overlap; memory stays at a few chunks.
    let mut pending = futures_util::stream::FuturesOrdered::new();
    let mut buffer = Vec::with_capacity(size);
    let mut cut_any = false;
    let mut failure = None;
    loop {
        if pending.len() >= IN_FLIGHT {
            match pending.next().await {
                Some(Ok(chunk)) => written.push(chunk),
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                None => {}
            }
            continue;
        }
        tokio::select! {
            biased;
            Some(done) = pending.next(), if !pending.is_empty() => match done {
                Ok(chunk) => written.push(chunk),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            },
            piece = source.next() => match piece {
                Some(Ok(piece)) => {
                    let mut piece = &piece[..];
                    while !piece.is_empty() {
                        let take = piece.len().min(size - buffer.len());
                        buffer.extend_from_slice(&piece[..take]);
                        piece = &piece[take..];
                        if buffer.len() == size {
                            let full = std::mem::replace(&mut buffer, Vec::with_capacity(size));
                            pending.push_back(store(full));
                            cut_any = true;
                        }
                    }
                }
                Some(Err(e)) => {
                    failure = Some(ChunkError::Source(e));
                    break;
                }
                None => break,
            },
        }
    }
    if failure.is_none() && (!buffer.is_empty() || !cut_any) {
        pending.push_back(store(buffer));
    }
    while let Some(done) = pending.next().await {
        match done {
            Ok(chunk) => written.push(chunk),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err((e, written)),
        None => Ok(written),
    }
}

/// Chunks being stored at once while an upload goes on.
const IN_FLIGHT: usize = 2;

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[tokio::test]
    async fn objects_are_cut_into_chunks_and_read_back_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1000).unwrap();
        let object = data(2500);
        let chunks = store.write(&mut object.as_slice()).await.unwrap();
        assert_eq!(chunks.iter().map(|c| c.len).collect::<Vec<_>>(), [1000, 1000, 500]);
        let mut back = Vec::new();
        for chunk in &chunks {
            back.extend(store.get(chunk).await.unwrap());
        }
        assert_eq!(back, object);
        // An exact multiple ends without an empty chunk; an empty object is one empty chunk.
        assert_eq!(store.write(&mut data(2000).as_slice()).await.unwrap().len(), 2);
        let empty = store.write(&mut &[][..]).await.unwrap();
        assert_eq!((empty.len(), empty[0].len), (1, 0));
        assert_eq!(store.get(&empty[0]).await.unwrap(), Vec::<u8>::new());
    }

    #[tokio::test]
    async fn rot_and_loss_are_detected_and_stale_temporaries_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1000).unwrap();
        let chunks = store.write(&mut data(1500).as_slice()).await.unwrap();
        let path = dir.path().join(&chunks[0].id[..2]).join(&chunks[0].id);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(store.get(&chunks[0]).await, Err(ChunkError::Corrupt { .. })));
        store.remove(&chunks[1..]).await;
        assert!(matches!(store.get(&chunks[1]).await, Err(ChunkError::Missing(_))));
        let forged = ChunkRef { id: "../../etc/passwd".into(), len: 0, sum: String::new(), replicas: Vec::new() };
        let mut copy = chunks[1].clone();
        copy.id = store.new_id().unwrap();
        assert!(matches!(
            store.put_as(&copy, Bytes::from_static(b"not the data")).await,
            Err(ChunkError::Corrupt { .. })
        ));
        store.put_as(&copy, Bytes::copy_from_slice(&data(1500)[1000..])).await.unwrap();
        assert_eq!(store.get(&copy).await.unwrap(), &data(1500)[1000..]);
        assert!(matches!(store.get(&forged).await, Err(ChunkError::InvalidId(_))));

        let tmp = dir.path().join("ab").join("0123456789abcdef0123456789abcdef.tmp");
        std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
        std::fs::write(&tmp, b"half").unwrap();
        ChunkStore::open(dir.path(), 1000).unwrap();
        assert!(!tmp.exists(), "a crash's half-written chunk is removed at open");
    }

    #[test]
    fn both_checksum_kinds_verify_and_old_records_still_read() {
        let bytes = b"chunk bytes";
        assert!(checksum(bytes).starts_with("b3:"));
        assert!(verify_sum(&checksum(bytes), bytes).0 && !verify_sum(&checksum(bytes), b"other").0);
        let legacy = sha256(bytes);
        assert!(verify_sum(&legacy, bytes).0 && !verify_sum(&legacy, b"other").0);
        let old = format!(r#"{{"id":"0123456789abcdef0123456789abcdef","len":11,"sha256":"{legacy}"}}"#);
        let chunk: ChunkRef = serde_json::from_str(&old).unwrap();
        assert_eq!(chunk.sum, legacy);
        assert!(serde_json::to_string(&chunk).unwrap().contains("\"sum\""));
    }

    /// A source that fails midway: the chunks already written are removed.
    #[tokio::test]
    async fn a_failed_write_leaves_nothing() {
        struct Failing(usize);
        impl AsyncRead for Failing {
            fn poll_read(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                buf: &mut tokio::io::ReadBuf<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                if self.0 == 0 {
                    return std::task::Poll::Ready(Err(std::io::Error::other("client went away")));
                }
                let n = self.0.min(buf.remaining()).min(100);
                buf.put_slice(&vec![7u8; n]);
                self.0 -= n;
                std::task::Poll::Ready(Ok(()))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1000).unwrap();
        let failed = store.write(&mut Failing(2500)).await;
        assert!(matches!(failed, Err(ChunkError::Source(_))), "{failed:?}");
        let files: usize = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap().count())
            .sum();
        assert_eq!(files, 0, "no chunk of the failed write remains");
    }
}
