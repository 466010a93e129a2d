//! The orphan sweep: deletes this node's chunk files that no record names, the ones left by a
//! coordinator that died between writing an object's chunks and its record, or by a trash log
//! whose tail a power cut lost (space, never data, until this runs).
//!
//! Why it cannot delete a live chunk: only files older than the grace period
//! (`storage.orphan_grace_ms`, a day) are candidates, and they are listed *before* the records
//! are read, so a chunk written since is never one; an upload names its chunks in a record
//! within the grace period (a part record per part; a single PUT is at most 5 GiB). Records
//! are read in the order data moves between them (`named`), so a chunk moving during the sweep
//! is seen at least once. Chunks
//! waiting in the trash are kept: a GET that began before their object went may still read
//! them. Any error reading records ends the sweep without deleting anything.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use flaredb_client::records::Records;

use super::named::Named;
use crate::chunks::ChunkRef;

/// What one sweep found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Chunk files older than the grace period.
    pub examined: usize,
    /// Records read.
    pub records: u64,
    pub removed: usize,
    pub removed_bytes: u64,
}

impl super::Replicas {
    /// One sweep of this node's chunk files against the records in `records`.
    pub async fn sweep(&self, records: &Records, grace: Duration) -> Result<Swept, String> {
        let cutoff = SystemTime::now().checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
        let dir = self.local.dir().to_path_buf();
        let old = tokio::task::spawn_blocking(move || crate::chunks::files_older_than(&dir, cutoff))
            .await
            .map_err(|e| format!("listing chunk files: {e}"))?
            .map_err(|e| format!("listing chunk files: {e}"))?;
        let mut swept = Swept { examined: old.len(), ..Default::default() };
        if old.is_empty() {
            return Ok(swept);
        }
        let mut named = HashSet::new();
        let mut pages = Named::new(records);
        while let Some(page) = pages.next().await? {
            named.extend(page.into_iter().flat_map(|(_, chunks)| chunks.into_iter().map(|c| c.id)));
        }
        swept.records = pages.read;
        named.extend(self.trash.ids());
        let orphans: Vec<ChunkRef> = old
            .into_iter()
            .filter(|(id, _)| !named.contains(id))
            .map(|(id, len)| ChunkRef { id, len, sum: String::new(), replicas: Vec::new() })
            .collect();
        swept.removed = orphans.len();
        swept.removed_bytes = orphans.iter().map(|c| c.len).sum();
        for orphan in &orphans {
            tracing::info!(chunk = %orphan.id, bytes = orphan.len, "deleting a chunk no record names");
        }
        self.local.remove(&orphans).await;
        Ok(swept)
    }

    /// Sweeps every `every` until shutdown (never when `every` is zero).
    pub async fn run_sweeps(
        &self,
        records: Records,
        every: Duration,
        grace: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let records = &records;
        super::every(every, &shutdown, move || async move {
            match self.sweep(records, grace).await {
                Ok(swept) => {
                    self.metrics.orphans_removed.inc_by(swept.removed as u64);
                    if swept.removed > 0 {
                        tracing::info!(
                            removed = swept.removed,
                            bytes = swept.removed_bytes,
                            examined = swept.examined,
                            records = swept.records,
                            "orphan sweep deleted chunks no record names"
                        );
                    } else {
                        tracing::debug!(
                            examined = swept.examined,
                            records = swept.records,
                            "orphan sweep found nothing"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the orphan sweep stopped without deleting anything"),
            }
        })
        .await
    }
}
