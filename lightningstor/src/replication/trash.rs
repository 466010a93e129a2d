//! Deferred chunk deletion. Chunks nothing refers to any more (a deleted or overwritten object,
//! an aborted upload) are deleted `storage.delete_delay_ms` after the request that dropped them,
//! in the background and oldest first: unlinking large files competes with the fsyncs of the
//! requests being served (the filesystem journals both), so a burst of deletes finishes at the
//! speed of its metadata and the disk work follows later. Garage (10 minutes) and Ceph's RGW
//! (2 hours) defer block deletion the same way; the space comes back after the delay.
//!
//! The queue is kept in `<data>/trash.log`, one JSON line per batch, appended without an fsync:
//! a restarted process finds what it still had to delete. A power loss may drop the log's last
//! lines, leaving those chunks as orphans on disk (never as missing data).

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::chunks::{ChunkError, ChunkRef};

/// Chunks dropped together, and when they may go.
#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    due_ms: i64,
    chunks: Vec<ChunkRef>,
}

struct State {
    queue: VecDeque<Batch>,
    log: std::fs::File,
    /// Lines in the log; compacted when they far outnumber the batches still queued.
    lines: usize,
    /// Chunks and bytes queued.
    chunks: usize,
    bytes: u64,
}

fn bytes(batch: &Batch) -> u64 {
    batch.chunks.iter().map(|c| c.len).sum()
}

impl State {
    /// Queues `batch`, counting it.
    fn enqueue(&mut self, batch: Batch) {
        self.chunks += batch.chunks.len();
        self.bytes += bytes(&batch);
        self.queue.push_back(batch);
    }

    /// The oldest batch if it is due by `now_ms`, no longer counted.
    fn dequeue_due(&mut self, now_ms: i64) -> Option<Batch> {
        let batch = self.queue.pop_front_if(|b| b.due_ms <= now_ms)?;
        self.chunks -= batch.chunks.len();
        self.bytes -= bytes(&batch);
        Some(batch)
    }
}

pub struct Trash {
    path: PathBuf,
    delay: Duration,
    state: Mutex<State>,
    wake: tokio::sync::Notify,
}

fn io(context: &str, path: &Path, e: std::io::Error) -> ChunkError {
    ChunkError::Io(std::io::Error::new(e.kind(), format!("{context} {}: {e}", path.display())))
}

impl Trash {
    /// Opens the queue at `path`, with what a previous run left in it.
    pub fn open(path: &Path, delay: Duration) -> Result<Self, ChunkError> {
        let mut found = Vec::new();
        match std::fs::File::open(path) {
            Ok(file) => {
                for line in std::io::BufReader::new(file).lines() {
                    let line = line.map_err(|e| io("reading", path, e))?;
                    // A torn last line (a crash mid-append) names nothing that was acknowledged.
                    match serde_json::from_str::<Batch>(&line) {
                        Ok(batch) => found.push(batch),
                        Err(e) => tracing::warn!(error = %e, "skipping an unreadable line of {}", path.display()),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("reading", path, e)),
        }
        found.sort_by_key(|b| b.due_ms);
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| io("opening", path, e))?;
        let mut state = State { queue: VecDeque::new(), log, lines: found.len(), chunks: 0, bytes: 0 };
        for batch in found {
            state.enqueue(batch);
        }
        let trash =
            Self { path: path.to_path_buf(), delay, state: Mutex::new(state), wake: tokio::sync::Notify::new() };
        let (chunks, bytes) = trash.pending();
        if chunks > 0 {
            tracing::info!(chunks, bytes, "chunks a previous run dropped will be deleted");
        }
        Ok(trash)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `chunks` for deletion after the delay.
    pub fn push(&self, chunks: Vec<ChunkRef>) {
        if chunks.is_empty() {
            return;
        }
        let batch = Batch { due_ms: photon_runtime::time::now_ms() + self.delay.as_millis() as i64, chunks };
        let mut line = serde_json::to_vec(&batch).unwrap_or_default();
        line.push(b'\n');
        let mut state = self.lock();
        if let Err(e) = state.log.write_all(&line) {
            tracing::warn!(error = %e, "could not log chunks to delete in {}; a restart would orphan them", self.path.display());
        }
        state.lines += 1;
        state.enqueue(batch);
        drop(state);
        self.wake.notify_one();
    }

    /// The ids of the chunks waiting to be deleted (the orphan sweep keeps them).
    pub fn ids(&self) -> std::collections::HashSet<String> {
        let state = self.lock();
        state.queue.iter().flat_map(|b| b.chunks.iter().map(|c| c.id.clone())).collect()
    }

    /// Chunks and bytes waiting to be deleted.
    pub fn pending(&self) -> (usize, u64) {
        let state = self.lock();
        (state.chunks, state.bytes)
    }

    /// The chunks due by `now_ms` (leaving the queue; the log keeps them until `compact`), or
    /// how long until the next batch is due.
    fn take_due(&self, now_ms: i64) -> Result<Vec<ChunkRef>, Option<Duration>> {
        let mut state = self.lock();
        let mut due = Vec::new();
        while let Some(batch) = state.dequeue_due(now_ms) {
            due.extend(batch.chunks);
        }
        if !due.is_empty() {
            return Ok(due);
        }
        Err(state.queue.front().map(|b| Duration::from_millis((b.due_ms - now_ms).max(0) as u64)))
    }

    /// Rewrites the log to what is still queued, once deleted batches dominate it (after the
    /// deletes, so a crash before leaves them logged and the next run deletes them again).
    fn compact(&self) {
        let mut state = self.lock();
        let emptied = state.queue.is_empty() && state.lines > 0;
        if !emptied && state.lines < 2 * state.queue.len() + 64 {
            return;
        }
        let rewrite = || -> std::io::Result<std::fs::File> {
            let tmp = self.path.with_extension("log.tmp");
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            for batch in &state.queue {
                serde_json::to_writer(&mut out, batch)?;
                out.write_all(b"\n")?;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::OpenOptions::new().append(true).open(&self.path)
        };
        match rewrite() {
            Ok(log) => {
                state.lines = state.queue.len();
                state.log = log;
            }
            Err(e) => tracing::warn!(error = %e, "could not compact {}", self.path.display()),
        }
    }
}

impl super::Replicas {
    /// Deletes chunks in the background after the delay: nothing refers to them any more, so
    /// the request that dropped them need not wait for the disks.
    pub fn remove_later(&self, chunks: Vec<ChunkRef>) {
        self.trash.push(chunks);
        self.count_trash();
    }

    pub(super) fn count_trash(&self) {
        let (chunks, bytes) = self.trash.pending();
        self.metrics.trash_chunks.set(chunks as i64);
        self.metrics.trash_bytes.set(bytes as i64);
    }

    /// Deletes queued chunks as they come due, until shutdown.
    pub async fn run_trash(&self, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            match self.trash.take_due(photon_runtime::time::now_ms()) {
                Ok(due) => {
                    self.remove(&due).await;
                    self.trash.compact();
                    self.count_trash();
                }
                Err(wait) => {
                    let nap = wait.unwrap_or(Duration::from_secs(3600));
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = self.trash.wake.notified() => {}
                        _ = tokio::time::sleep(nap) => {}
                    }
                }
            }
        }
    }
}
