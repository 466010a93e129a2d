//! A volume's extents across the nodes that hold them: this node's extent store, and its peers'
//! over the replication port (9094). Writes and zeroes go to every replica of an extent and
//! succeed once a majority took them (the engine marks the others stale before acknowledging);
//! reads take the first replica that answers with verified data, this node's first; a corrupt
//! or unreachable copy is named to the caller, who marks it stale for repair.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use photon_api::lightningstor::v1 as pb;
use photon_api::lightningstor::v1::replication_client::ReplicationClient;
use photon_block::BlockError;
use ring::digest::{digest, SHA256};
use tonic::transport::Channel;

use super::extents::{ExtentError, ExtentStore};
use super::fences::Fences;
use super::map::ExtentRef;

/// Who writes: the volume and its writer lease's revision (0 before any lease: a volume
/// written only by the engine's own tests, or not at all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fence {
    pub volume: String,
    pub revision: i64,
}

/// What one replica said.
#[derive(Debug)]
pub enum ReplicaError {
    /// The data there is corrupt (a block's checksum does not match).
    Corrupt(String),
    /// The writer was fenced off: a later writer holds the volume.
    Fenced(String),
    /// Not answering, or failing otherwise.
    Down(String),
}

impl ReplicaError {
    fn from_local(e: ExtentError) -> Self {
        match e {
            ExtentError::Corrupt { .. } => ReplicaError::Corrupt(e.to_string()),
            other => ReplicaError::Down(other.to_string()),
        }
    }

    fn from_status(node: &str, s: tonic::Status) -> Self {
        let message = format!("node {node}: {}", s.message());
        match s.code() {
            tonic::Code::DataLoss => ReplicaError::Corrupt(message),
            tonic::Code::FailedPrecondition => ReplicaError::Fenced(message),
            _ => ReplicaError::Down(message),
        }
    }
}

pub struct ExtentReplicas {
    pub local: Arc<ExtentStore>,
    pub fences: Arc<Fences>,
    pub node: String,
    peers: Vec<(String, ReplicationClient<Channel>)>,
    timeout: Duration,
}

/// The rendezvous score of `node` for extent `id`.
fn score(id: &str, node: &str) -> u64 {
    let hash = digest(&SHA256, format!("{id}/{node}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    u64::from_be_bytes(first)
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, ExtentError> + Send + 'static) -> Result<T, ReplicaError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(ReplicaError::from_local),
        Err(e) => Err(ReplicaError::Down(format!("an extent operation did not finish: {e}"))),
    }
}

impl ExtentReplicas {
    pub fn new(
        local: Arc<ExtentStore>,
        fences: Arc<Fences>,
        node: String,
        peers: Vec<(String, ReplicationClient<Channel>)>,
        timeout: Duration,
    ) -> Self {
        Self { local, fences, node, peers, timeout }
    }

    /// The nodes a new extent `id` of a volume with `copies` goes to: this one, then the
    /// best-ranked peers (at most as many as there are nodes).
    pub fn place(&self, id: &str, copies: usize) -> Vec<String> {
        let mut peers: Vec<&String> = self.peers.iter().map(|(n, _)| n).collect();
        peers.sort_by_key(|n| std::cmp::Reverse(score(id, n)));
        std::iter::once(self.node.clone()).chain(peers.into_iter().cloned()).take(copies.max(1)).collect()
    }

    /// The replicas of `extent` (an extent without any is this node's alone).
    pub fn nodes(&self, extent: &ExtentRef) -> Vec<String> {
        if extent.replicas.is_empty() {
            vec![self.node.clone()]
        } else {
            extent.replicas.clone()
        }
    }

    fn peer(&self, node: &str) -> Result<ReplicationClient<Channel>, ReplicaError> {
        self.peers
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| ReplicaError::Down(format!("node {node} is not among replication.peers")))
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// A call to a peer, given up after the timeout: tonic sends the deadline along but does
    /// not enforce it, and a peer that stopped (frozen, not dead) would hold the caller forever.
    async fn call<T>(
        &self,
        node: &str,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ReplicaError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(answer)) => Ok(answer.into_inner()),
            Ok(Err(status)) => Err(ReplicaError::from_status(node, status)),
            Err(_) => Err(ReplicaError::Down(format!("node {node} did not answer within {:?}", self.timeout))),
        }
    }

    fn wire(fence: &Fence) -> Option<pb::Fence> {
        Some(pb::Fence { volume: fence.volume.clone(), revision: fence.revision })
    }

    /// Writes `data` at `offset` of extent `id` on `node`.
    pub async fn write_on(&self, node: &str, id: &str, offset: u64, data: Bytes, fence: &Fence) -> Result<(), ReplicaError> {
        if node == self.node {
            self.fences.admit(&fence.volume, fence.revision).map_err(ReplicaError::Fenced)?;
            let (store, id) = (self.local.clone(), id.to_string());
            return blocking(move || store.write(&id, offset, &data)).await;
        }
        let message = pb::WriteExtentRequest { id: id.into(), offset, data, fence: Self::wire(fence) };
        let mut peer = self.peer(node)?;
        self.call(node, peer.write_extent(self.request(message))).await.map(|_| ())
    }

    pub async fn zero_on(&self, node: &str, id: &str, offset: u64, len: u64, fence: &Fence) -> Result<(), ReplicaError> {
        if node == self.node {
            self.fences.admit(&fence.volume, fence.revision).map_err(ReplicaError::Fenced)?;
            let (store, id) = (self.local.clone(), id.to_string());
            return blocking(move || store.zero(&id, offset, len)).await;
        }
        let request = self.request(pb::ZeroExtentRequest { id: id.into(), offset, len, fence: Self::wire(fence) });
        let mut peer = self.peer(node)?;
        self.call(node, peer.zero_extent(request)).await.map(|_| ())
    }

    pub async fn read_on(&self, node: &str, id: &str, offset: u64, len: u64) -> Result<Bytes, ReplicaError> {
        if node == self.node {
            let (store, id) = (self.local.clone(), id.to_string());
            return blocking(move || store.read(&id, offset, len)).await;
        }
        let request = self.request(pb::ReadExtentRequest { id: id.into(), offset, len });
        let mut peer = self.peer(node)?;
        let data = self.call(node, peer.read_extent(request)).await?.data;
        if data.len() as u64 != len {
            return Err(ReplicaError::Down(format!("node {node} answered {} bytes, not {len}", data.len())));
        }
        Ok(data)
    }

    pub async fn allocation_on(&self, node: &str, id: &str, offset: u64, len: u64) -> Result<Vec<(u64, bool)>, ReplicaError> {
        if node == self.node {
            let (store, id) = (self.local.clone(), id.to_string());
            return blocking(move || store.allocation(&id, offset, len)).await;
        }
        let request = self.request(pb::ReadExtentRequest { id: id.into(), offset, len });
        let mut peer = self.peer(node)?;
        let runs = self.call(node, peer.extent_allocation(request)).await?.runs;
        Ok(runs.into_iter().map(|r| (r.blocks, r.written)).collect())
    }

    pub async fn flush_on(&self, node: &str) -> Result<(), ReplicaError> {
        if node == self.node {
            let store = self.local.clone();
            return blocking(move || store.flush()).await;
        }
        let request = self.request(pb::FlushExtentsRequest {});
        let mut peer = self.peer(node)?;
        self.call(node, peer.flush_extents(request)).await.map(|_| ())
    }

    /// Removes extents `ids` from `node`; gone already is fine.
    pub async fn delete_on(&self, node: &str, ids: Vec<String>) -> Result<(), ReplicaError> {
        if node == self.node {
            let store = self.local.clone();
            return blocking(move || ids.iter().try_for_each(|id| store.delete(id))).await;
        }
        let request = self.request(pb::DeleteChunksRequest { ids });
        let mut peer = self.peer(node)?;
        self.call(node, peer.delete_extents(request)).await.map(|_| ())
    }

    /// Reads from the first replica (not `avoid`) that answers with verified data; the nodes
    /// that were corrupt or down on the way, with why.
    pub async fn read(&self, extent: &ExtentRef, offset: u64, len: u64) -> Result<(Bytes, Vec<(String, ReplicaError)>), BlockError> {
        let mut failed = Vec::new();
        for node in self.readable(extent) {
            match self.read_on(&node, &extent.id, offset, len).await {
                Ok(data) => return Ok((data, failed)),
                Err(e) => failed.push((node, e)),
            }
        }
        Err(none_answered(&extent.id, &failed))
    }

    pub async fn allocation(&self, extent: &ExtentRef, offset: u64, len: u64) -> Result<Vec<(u64, bool)>, BlockError> {
        let mut failed = Vec::new();
        for node in self.readable(extent) {
            match self.allocation_on(&node, &extent.id, offset, len).await {
                Ok(runs) => return Ok(runs),
                Err(e) => failed.push((node, e)),
            }
        }
        Err(none_answered(&extent.id, &failed))
    }

    /// The replicas to read from, this node's first, stale ones left out.
    fn readable(&self, extent: &ExtentRef) -> Vec<String> {
        let mut nodes: Vec<String> = self.nodes(extent).into_iter().filter(|n| !extent.stale.contains(n)).collect();
        nodes.sort_by_key(|n| *n != self.node);
        nodes
    }
}

fn none_answered(id: &str, failed: &[(String, ReplicaError)]) -> BlockError {
    let why: Vec<String> = failed.iter().map(|(n, e)| format!("{n}: {e:?}")).collect();
    if failed.iter().any(|(_, e)| matches!(e, ReplicaError::Corrupt(_))) && failed.iter().all(|(_, e)| !matches!(e, ReplicaError::Down(_))) {
        return BlockError::Corrupt(format!("extent {id}: no replica holds intact data ({})", why.join("; ")));
    }
    BlockError::Io(format!("extent {id}: no replica answered ({})", why.join("; ")))
}
