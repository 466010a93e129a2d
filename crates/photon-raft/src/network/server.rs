//! The peer-port service: receives Raft messages and hands them to the addressed group.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use openraft::error::{CheckIsLeaderError, ClientWriteError, InstallSnapshotError, RaftError as OpenRaftError};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::Raft;
use photon_api::raft::v1::raft_peer_server::{RaftPeer, RaftPeerServer};
use photon_api::raft::v1::{RaftReply, RaftRequest};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::codec;
use super::forward::ForwardFailure;
use super::PeerTls;
use crate::fault::{FaultInjector, Verdict};
use crate::{App, Batch, NodeId, RaftError, TypeConfig};

/// Largest Raft message accepted (a batch of entries or a snapshot chunk).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The Raft groups of this process, by group id.
pub struct Router<A: App> {
    groups: Arc<RwLock<HashMap<u64, Raft<TypeConfig<A>>>>>,
    fault: FaultInjector,
}

impl<A: App> Clone for Router<A> {
    fn clone(&self) -> Self {
        Self { groups: self.groups.clone(), fault: self.fault.clone() }
    }
}

impl<A: App> Router<A> {
    pub fn new(fault: FaultInjector) -> Self {
        Self { groups: Arc::default(), fault }
    }

    pub fn add(&self, group: u64, raft: Raft<TypeConfig<A>>) {
        self.groups.write().unwrap_or_else(|p| p.into_inner()).insert(group, raft);
    }

    pub fn remove(&self, group: u64) -> Option<Raft<TypeConfig<A>>> {
        self.groups.write().unwrap_or_else(|p| p.into_inner()).remove(&group)
    }

    /// The addressed group, unless a fault drops messages from the sender.
    fn accept(&self, request: &RaftRequest) -> Result<Raft<TypeConfig<A>>, Status> {
        if self.fault.verdict(request.from) == Verdict::Drop {
            return Err(Status::unavailable("dropped by fault injection"));
        }
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        groups
            .get(&request.group)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("no raft group {} on this node", request.group)))
    }
}

fn not_leader(id: Option<NodeId>, node: Option<openraft::BasicNode>) -> ForwardFailure {
    ForwardFailure::NotLeader { leader: id.zip(node.map(|n| n.addr)) }
}

/// Why the leader could not make a client write (or membership change) a follower forwarded.
fn write_failure(e: OpenRaftError<NodeId, ClientWriteError<NodeId, openraft::BasicNode>>) -> ForwardFailure {
    match e {
        OpenRaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(f.leader_id, f.leader_node),
        OpenRaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => ForwardFailure::Rejected(e.to_string()),
        OpenRaftError::Fatal(_) => ForwardFailure::Stopped,
    }
}

fn reply<T: Serialize>(result: &T) -> Result<Response<RaftReply>, Status> {
    Ok(Response::new(RaftReply { payload: codec::encode(result)? }))
}

struct PeerService<A: App>(Router<A>);

#[tonic::async_trait]
impl<A: App> RaftPeer for PeerService<A> {
    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let raft = self.0.accept(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig<A>> = codec::decode(&request.payload)?;
        let result: Result<_, OpenRaftError<NodeId>> = raft.append_entries(rpc).await;
        reply(&result)
    }

    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let raft = self.0.accept(&request)?;
        let rpc: VoteRequest<NodeId> = codec::decode(&request.payload)?;
        let result: Result<_, OpenRaftError<NodeId>> = raft.vote(rpc).await;
        reply(&result)
    }

    async fn forward(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let raft = self.0.accept(&request)?;
        // A follower's batcher forwards its whole batch: it stays one entry here.
        let proposals: Vec<A::Request> = codec::decode(&request.payload)?;
        let result: Result<Vec<A::Response>, ForwardFailure> = match raft.client_write(Batch(proposals)).await {
            Ok(response) => Ok(response.data),
            Err(e) => Err(write_failure(e)),
        };
        reply(&result)
    }

    async fn read_index(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let raft = self.0.accept(&request)?;
        let result: Result<u64, ForwardFailure> = match raft.ensure_linearizable().await {
            Ok(read_log_id) => Ok(read_log_id.map_or(0, |id| id.index)),
            Err(OpenRaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(not_leader(f.leader_id, f.leader_node))
            }
            Err(OpenRaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => Err(ForwardFailure::NoQuorum),
            Err(OpenRaftError::Fatal(_)) => Err(ForwardFailure::Stopped),
        };
        reply(&result)
    }

    async fn change_membership(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let raft = self.0.accept(&request)?;
        let change: openraft::ChangeMembers<NodeId, openraft::BasicNode> = codec::decode(&request.payload)?;
        let result: Result<(), ForwardFailure> = match raft.change_membership(change, false).await {
            Ok(_) => Ok(()),
            Err(e) => Err(write_failure(e)),
        };
        reply(&result)
    }

    async fn install_snapshot(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let raft = self.0.accept(&request)?;
        let rpc: InstallSnapshotRequest<TypeConfig<A>> = codec::decode(&request.payload)?;
        let result: Result<_, OpenRaftError<NodeId, InstallSnapshotError>> = raft.install_snapshot(rpc).await;
        reply(&result)
    }
}

/// Serves the peer port on `listener` until `shutdown`. With `tls`, peers must present a
/// certificate signed by `tls.ca`.
pub async fn serve<A: App>(
    listener: TcpListener,
    router: Router<A>,
    tls: Option<&PeerTls>,
    shutdown: CancellationToken,
) -> Result<(), RaftError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| RaftError::Transport(format!("cannot read {}: {e}", path.display())))
    };
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?))
            .client_ca_root(Certificate::from_pem(read(&tls.ca)?));
        builder = builder.tls_config(config).map_err(|e| RaftError::Transport(format!("peer TLS: {e}")))?;
    }
    // tonic ignores its own tcp_nodelay for a custom incoming stream, so set it here: with Nagle
    // on, a small AppendEntries waits for the peer's delayed ACK (~40 ms per round trip).
    let incoming = tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |accepted| {
        accepted.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    });
    let service = RaftPeerServer::new(PeerService(router))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
        .await
        .map_err(|e| RaftError::Transport(format!("peer server failed: {e}")))
}
