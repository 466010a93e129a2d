//! Chunks across nodes. Each chunk is stored on `copies` nodes (3 by default): the node that
//! receives the upload and the peers ranked highest for the chunk's id (rendezvous hashing), so
//! any node can place a chunk without asking anyone. A write is acknowledged once a majority of
//! its replicas hold it durably; a replica that could not be written is remembered as a repair
//! hint in flaredb (`repair/<node>/<chunk>`), and that node pulls the chunk when it is back
//! (`repair`). A read tries this node's copy first, checks every copy's checksum, and rewrites a
//! missing or corrupt local copy from a good replica (read repair).
//!
//! The chunk list of an object records the replicas chosen at write time (`ChunkRef::replicas`),
//! so adding nodes later does not move existing chunks.

pub mod named;
pub mod repair;
pub mod scrub;
pub mod server;
pub mod sweep;
pub mod trash;

use std::time::Duration;

use bytes::Bytes;
use flaredb_client::records::Records;
use futures_util::Stream;
use photon_api::lightningstor::v1 as pb;
use photon_api::lightningstor::v1::replication_client::ReplicationClient;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use ring::digest::{digest, SHA256};
use tonic::transport::Channel;

use crate::chunks::{checksum_aside, cut, verify_sum, ChunkError, ChunkRef, ChunkStore};
use repair::Hint;

/// Runs `pass` every `period` until `shutdown` (never when `period` is zero); a pass still
/// running at shutdown is dropped, so each must be safe to stop at any await.
pub async fn every<F, Pass>(period: Duration, shutdown: &tokio_util::sync::CancellationToken, mut pass: F)
where
    F: FnMut() -> Pass,
    Pass: std::future::Future<Output = ()>,
{
    if period.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = pass() => {}
        }
    }
}

/// Another node of the cluster.
pub struct Peer {
    pub id: String,
    pub client: ReplicationClient<Channel>,
}

/// Counters on `/metrics`.
#[derive(Default, Clone)]
pub struct ReplicaMetrics {
    /// Replica writes that failed (and became repair hints).
    pub write_failures: Counter,
    /// Chunks rewritten on this node from a replica (read repair and hints).
    pub repairs: Counter,
    /// Repair hints waiting for this node.
    pub pending: Gauge,
    /// Chunks (and their bytes) dropped but not yet deleted (`trash`).
    pub trash_chunks: Gauge,
    pub trash_bytes: Gauge,
    /// Chunk files the orphan sweep deleted (`sweep`).
    pub orphans_removed: Counter,
    /// Copies the scrub found corrupt or missing (`scrub`).
    pub scrub_bad: Counter,
}

/// The chunk store the S3 layer writes to and reads from: this node's disk and its peers.
pub struct Replicas {
    pub local: ChunkStore,
    pub node: String,
    pub peers: Vec<Peer>,
    copies: usize,
    timeout: Duration,
    /// Where repair hints live (flaredb).
    hints: Records,
    /// Chunks waiting to be deleted.
    trash: trash::Trash,
    pub metrics: ReplicaMetrics,
}

impl From<tonic::Status> for ChunkError {
    fn from(status: tonic::Status) -> Self {
        ChunkError::Io(std::io::Error::other(format!("a replica answered {:?}: {}", status.code(), status.message())))
    }
}

/// The rendezvous score of `node` for chunk `id`: the higher, the likelier it holds a copy.
fn score(id: &str, node: &str) -> u64 {
    let hash = digest(&SHA256, format!("{id}/{node}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    u64::from_be_bytes(first)
}

fn wire(chunk: &ChunkRef) -> pb::Chunk {
    pb::Chunk { id: chunk.id.clone(), sum: chunk.sum.clone(), len: chunk.len }
}

impl Replicas {
    pub fn new(
        local: ChunkStore,
        node: String,
        peers: Vec<Peer>,
        copies: usize,
        timeout: Duration,
        hints: Records,
        trash: trash::Trash,
    ) -> Self {
        let copies = copies.clamp(1, peers.len() + 1);
        let replicas = Self { local, node, peers, copies, timeout, hints, trash, metrics: ReplicaMetrics::default() };
        replicas.count_trash();
        replicas
    }

    /// How many replicas a write needs before it is acknowledged.
    pub fn quorum(&self) -> usize {
        self.copies / 2 + 1
    }

    /// The nodes a new chunk `id` goes to: this one, then the best-ranked peers.
    pub fn place(&self, id: &str) -> Vec<String> {
        let mut peers: Vec<&Peer> = self.peers.iter().collect();
        peers.sort_by_key(|p| std::cmp::Reverse(score(id, &p.id)));
        std::iter::once(self.node.clone()).chain(peers.iter().map(|p| p.id.clone())).take(self.copies).collect()
    }

    fn peer(&self, node: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == node)
    }

    /// Whether this node is meant to hold `chunk` (chunks without replicas are this node's).
    fn holds(&self, chunk: &ChunkRef) -> bool {
        chunk.replicas.is_empty() || chunk.replicas.contains(&self.node)
    }

    /// Stores one chunk on its replicas; acknowledged once a majority hold it.
    pub async fn put(&self, bytes: Vec<u8>) -> Result<ChunkRef, ChunkError> {
        let id = self.local.new_id()?;
        let replicas = self.place(&id);
        let (sum, bytes) = checksum_aside(bytes).await?;
        let chunk = ChunkRef { id, len: bytes.len() as u64, sum, replicas };
        let data = Bytes::from(bytes);
        let writes = chunk.replicas.iter().map(|node| {
            let data = data.clone();
            let chunk = &chunk;
            async move {
                let result = if *node == self.node {
                    self.local.store(chunk, data).await
                } else {
                    match self.peer(node) {
                        Some(peer) => {
                            let mut request =
                                tonic::Request::new(pb::PutChunkRequest { chunk: Some(wire(chunk)), data });
                            request.set_timeout(self.timeout);
                            peer.client.clone().put_chunk(request).await.map(|_| ()).map_err(ChunkError::from)
                        }
                        None => Err(ChunkError::Io(std::io::Error::other(format!("node {node} is not configured")))),
                    }
                };
                (node.clone(), result)
            }
        });
        let results = futures_util::future::join_all(writes).await;
        let stored: Vec<&String> = results.iter().filter(|(_, r)| r.is_ok()).map(|(n, _)| n).collect();
        if stored.len() < self.quorum() {
            let why: Vec<String> =
                results.iter().filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}"))).collect();
            self.remove(std::slice::from_ref(&chunk)).await;
            return Err(ChunkError::Io(std::io::Error::other(format!(
                "only {} of {} replicas of a chunk could be written (a majority is needed): {}",
                stored.len(),
                chunk.replicas.len(),
                why.join("; ")
            ))));
        }
        for (node, result) in &results {
            if let Err(e) = result {
                tracing::warn!(chunk = %chunk.id, %node, error = %e, "a replica write failed; the node will be repaired");
                self.metrics.write_failures.inc();
                self.hint(node, Hint::put(&chunk)).await?;
            }
        }
        Ok(chunk)
    }

    /// Writes the pieces of `source` as replicated chunks (see `chunks::cut`); on an error the
    /// chunks already written are removed.
    pub async fn write_stream(
        &self,
        source: impl Stream<Item = std::io::Result<Bytes>>,
    ) -> Result<Vec<ChunkRef>, ChunkError> {
        match cut(source, self.local.chunk_bytes(), |bytes| self.put(bytes)).await {
            Ok(chunks) => Ok(chunks),
            Err((e, written)) => {
                self.remove(&written).await;
                Err(e)
            }
        }
    }

    /// Asks this node's disk to read `chunk` into the page cache in the background (a GET
    /// will want it soon); nothing when another node holds it.
    pub fn prefetch(&self, chunk: &ChunkRef) {
        if self.holds(chunk) {
            self.local.prefetch(chunk);
        }
    }

    /// A verified copy of `chunk`: this node's, else a replica's (which then repairs this
    /// node's copy when it should have one).
    pub async fn get(&self, chunk: &ChunkRef) -> Result<Bytes, ChunkError> {
        let local_error = if self.holds(chunk) {
            match self.local.get(chunk).await {
                Ok(bytes) => return Ok(bytes),
                Err(e @ (ChunkError::Missing(_) | ChunkError::Corrupt { .. })) => e,
                Err(e) => return Err(e),
            }
        } else {
            ChunkError::Missing(chunk.id.clone())
        };
        let bytes = self.fetch(chunk).await.map_err(|remote| {
            tracing::error!(chunk = %chunk.id, local = %local_error, %remote, "no good copy of a chunk is reachable");
            remote
        })?;
        if self.holds(chunk) {
            tracing::warn!(chunk = %chunk.id, problem = %local_error, "repairing this node's copy from a replica");
            self.local.put_as(chunk, bytes.clone()).await?;
            self.metrics.repairs.inc();
        }
        Ok(bytes)
    }

    /// A verified copy of `chunk` from another replica.
    pub async fn fetch(&self, chunk: &ChunkRef) -> Result<Bytes, ChunkError> {
        let mut problems = Vec::new();
        for node in chunk.replicas.iter().filter(|n| **n != self.node) {
            let Some(peer) = self.peer(node) else {
                problems.push(format!("{node}: not configured"));
                continue;
            };
            let mut request = tonic::Request::new(pb::GetChunkRequest { chunk: Some(wire(chunk)) });
            request.set_timeout(self.timeout);
            match peer.client.clone().get_chunk(request).await {
                Ok(answer) => {
                    let data = answer.into_inner().data;
                    let (good, found) = verify_sum(&chunk.sum, &data);
                    if good && data.len() as u64 == chunk.len {
                        return Ok(data);
                    }
                    problems.push(format!("{node}: sent bytes hashing to {found}"));
                }
                Err(status) => problems.push(format!("{node}: {}", status.message())),
            }
        }
        Err(ChunkError::Io(std::io::Error::other(format!(
            "chunk {} has no good copy on another replica ({})",
            chunk.id,
            problems.join("; ")
        ))))
    }

    /// Deletes chunks from every replica; a replica that cannot be reached gets a hint.
    pub async fn remove(&self, chunks: &[ChunkRef]) {
        self.local.remove(chunks).await;
        for peer in &self.peers {
            let ids: Vec<String> =
                chunks.iter().filter(|c| c.replicas.contains(&peer.id)).map(|c| c.id.clone()).collect();
            if ids.is_empty() {
                continue;
            }
            let mut request = tonic::Request::new(pb::DeleteChunksRequest { ids: ids.clone() });
            request.set_timeout(self.timeout);
            if let Err(status) = peer.client.clone().delete_chunks(request).await {
                tracing::warn!(node = %peer.id, error = %status.message(), "chunk deletes will be retried by the node");
                for chunk in chunks.iter().filter(|c| ids.contains(&c.id)) {
                    if let Err(e) = self.hint(&peer.id, Hint::delete(chunk)).await {
                        tracing::error!(chunk = %chunk.id, error = %e, "a chunk delete is lost (orphaned replica)");
                    }
                }
            }
        }
    }
}
