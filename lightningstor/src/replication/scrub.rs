//! The scrub: reads every chunk this node should hold, whether anyone asks for it or not, checks
//! it against its checksum and rewrites a corrupt or missing copy from a replica, so rot on a
//! disk is mended while other copies are still good, not found by the GET that needed it.
//! Paced (`storage.scrub_bytes_per_sec`) so it never competes with requests for the disk.

use std::time::{Duration, Instant};

use flaredb_client::records::Records;

use super::named::Named;
use crate::chunks::{ChunkError, ChunkRef};

/// What one scrub pass found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scrubbed {
    /// Chunks of this node read and verified.
    pub checked: u64,
    pub bytes: u64,
    /// Copies found corrupt or missing.
    pub bad: u64,
    /// Of those, rewritten from a replica.
    pub repaired: u64,
}

impl super::Replicas {
    /// One pass over every chunk the records name that this node holds, at most `rate` bytes
    /// a second (0: unpaced).
    pub async fn scrub(&self, records: &Records, rate: u64) -> Result<Scrubbed, String> {
        let mut done = Scrubbed::default();
        let started = Instant::now();
        let mut pages = Named::new(records);
        while let Some(page) = pages.next().await? {
            for (key, chunks) in page {
                for chunk in chunks.into_iter().filter(|c| self.holds(c)) {
                    self.scrub_one(records, &key, &chunk, &mut done).await;
                    done.checked += 1;
                    done.bytes += chunk.len;
                    if rate > 0 {
                        let due = Duration::from_secs_f64(done.bytes as f64 / rate as f64);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        }
        Ok(done)
    }

    async fn scrub_one(&self, records: &Records, key: &str, chunk: &ChunkRef, done: &mut Scrubbed) {
        let problem = match self.local.get(chunk).await {
            Ok(_) => return,
            Err(e @ ChunkError::Corrupt { .. }) => e,
            Err(e @ ChunkError::Missing(_)) => {
                // Deleted since its record was read (the object went, the trash emptied)?
                match Named::still_names(records, key, &chunk.id).await {
                    Ok(true) => e,
                    Ok(false) => return,
                    Err(why) => {
                        tracing::warn!(chunk = %chunk.id, error = %why, "scrub: cannot tell whether a missing chunk is still needed");
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(chunk = %chunk.id, error = %e, "scrub: cannot read a chunk");
                return;
            }
        };
        done.bad += 1;
        self.metrics.scrub_bad.inc();
        match self.fetch(chunk).await {
            Ok(bytes) => match self.local.put_as(chunk, bytes).await {
                Ok(()) => {
                    done.repaired += 1;
                    self.metrics.repairs.inc();
                    tracing::warn!(chunk = %chunk.id, %problem, record = key, "scrub: rewrote this node's copy from a replica");
                }
                Err(e) => tracing::error!(chunk = %chunk.id, %problem, error = %e, "scrub: cannot rewrite a bad copy"),
            },
            Err(e) => {
                tracing::error!(chunk = %chunk.id, %problem, error = %e, record = key, "scrub: a bad copy has no good replica")
            }
        }
    }

    /// Scrubs every `every` until shutdown (never when `every` is zero).
    pub async fn run_scrubs(
        &self,
        records: Records,
        every: Duration,
        rate: u64,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let records = &records;
        super::every(every, &shutdown, move || async move {
            let started = Instant::now();
            let pass = self.scrub(records, rate).await;
            match pass {
                Ok(done) if done.bad > 0 => tracing::warn!(
                    checked = done.checked,
                    bytes = done.bytes,
                    bad = done.bad,
                    repaired = done.repaired,
                    seconds = started.elapsed().as_secs(),
                    "scrub pass found bad copies"
                ),
                Ok(done) => tracing::info!(
                    checked = done.checked,
                    bytes = done.bytes,
                    seconds = started.elapsed().as_secs(),
                    "scrub pass found every copy good"
                ),
                Err(e) => tracing::warn!(error = %e, "a scrub pass stopped early"),
            }
        })
        .await
    }
}
