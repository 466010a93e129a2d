//! Repair hints: a replica that missed a write (its node was down) or a delete, or a copy found
//! corrupt, is written down in flaredb as `repair/<node>/<chunk id>`. Each node works off its own
//! hints in the background (`run`): it pulls a missed chunk from another replica, or drops a
//! deleted one, then removes the hint. So a node that was down catches up by itself when it
//! returns, while the data stayed readable from the other replicas all along.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Replicas;
use crate::chunks::{ChunkError, ChunkRef};

/// What a node owes a chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hint {
    pub chunk: ChunkRef,
    /// Drop the replica rather than fetch it.
    pub delete: bool,
}

flaredb_client::json_record!(Hint);

impl Hint {
    pub fn put(chunk: &ChunkRef) -> Self {
        Self { chunk: chunk.clone(), delete: false }
    }

    pub fn delete(chunk: &ChunkRef) -> Self {
        Self { chunk: chunk.clone(), delete: true }
    }
}

fn prefix(node: &str) -> String {
    format!("repair/{node}/")
}

/// Hints handled per pass.
const BATCH: usize = 256;

impl Replicas {
    /// Records that `node` owes `hint` (durably, before the write it belongs to is acknowledged).
    pub async fn hint(&self, node: &str, hint: Hint) -> Result<(), ChunkError> {
        let key = format!("{}{}", prefix(node), hint.chunk.id);
        self.hints
            .put_with_ttl(&key, &hint, 0)
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(format!("recording a repair hint: {e}"))))
    }

    /// One pass over this node's hints; answers how many remain.
    pub async fn repair_once(&self) -> Result<usize, ChunkError> {
        let hints = self
            .hints
            .list_from::<Hint>(&prefix(&self.node), "", BATCH)
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(format!("reading repair hints: {e}"))))?;
        let mut left = 0;
        for (key, hint) in &hints {
            let done = if hint.delete {
                self.local.remove(std::slice::from_ref(&hint.chunk)).await;
                true
            } else if self.local.get(&hint.chunk).await.is_ok() {
                true
            } else {
                match self.fetch(&hint.chunk).await {
                    Ok(bytes) => {
                        self.local.put_as(&hint.chunk, bytes).await?;
                        self.metrics.repairs.inc();
                        tracing::info!(chunk = %hint.chunk.id, "repaired a chunk this node missed");
                        true
                    }
                    Err(e) => {
                        tracing::debug!(chunk = %hint.chunk.id, error = %e, "a repair waits for a replica");
                        false
                    }
                }
            };
            if done {
                let _ = self.hints.delete(key).await;
            } else {
                left += 1;
            }
        }
        let remaining = if hints.len() == BATCH { left.max(1) } else { left };
        self.metrics.pending.set(remaining as i64);
        Ok(remaining)
    }

    /// Works off this node's hints every `interval` until `shutdown`.
    pub async fn run_repairs(&self, interval: Duration, shutdown: CancellationToken) {
        loop {
            match self.repair_once().await {
                Ok(0) => {}
                Ok(left) => tracing::info!(left, "repairs remain"),
                Err(e) => tracing::warn!(error = %e, "a repair pass failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}
