//! The sending side: openraft's network factory and per-peer clients over tonic.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError as OpenRaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use photon_api::raft::v1::raft_peer_client::RaftPeerClient;
use photon_api::raft::v1::RaftRequest;
use photon_client::{lazy_channel, ChannelOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::Channel;

use super::codec;
use super::election_pause::ElectionPause;
use super::forward::ForwardFailure;
use super::lease::LeaseClock;
use super::per_group::PerGroup;
use super::server::MAX_MESSAGE_BYTES;
use super::PeerTls;
use crate::fault::{FaultInjector, Verdict};
use crate::{App, NodeId, TypeConfig};

/// How long opening a connection to a peer may take. Peers sit on one network; one that
/// does not accept within this is treated as down, and openraft (or the forwarding client)
/// tries again, rather than every forwarded request waiting out a long connect.
const PEER_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);

/// Channels to peers, shared by every group of the process (one connection per peer).
type Channels = Arc<Mutex<HashMap<String, Channel>>>;

/// openraft's network factory for one group on one node.
pub struct PeerNetwork<A> {
    group: u64,
    node: NodeId,
    tls: Option<PeerTls>,
    fault: FaultInjector,
    channels: Channels,
    leases: PerGroup<LeaseClock>,
    pauses: PerGroup<ElectionPause>,
    _app: PhantomData<fn() -> A>,
}

impl<A> PeerNetwork<A> {
    pub fn new(group: u64, node: NodeId, tls: Option<PeerTls>, fault: FaultInjector) -> Self {
        Self {
            group,
            node,
            tls,
            fault,
            channels: Arc::default(),
            leases: PerGroup::default(),
            pauses: PerGroup::default(),
            _app: PhantomData,
        }
    }

    /// The leader lease of this network's group (see `lease`).
    pub fn lease(&self) -> Arc<LeaseClock> {
        self.leases.of(self.group)
    }

    /// This group's one-shot election back-off (see `election_pause`).
    pub(crate) fn election_pause(&self) -> Arc<ElectionPause> {
        self.pauses.of(self.group)
    }

    pub fn group(&self) -> u64 {
        self.group
    }

    /// A factory for another group on the same node, sharing its connections.
    pub fn for_group(&self, group: u64) -> Self {
        Self {
            group,
            node: self.node,
            tls: self.tls.clone(),
            fault: self.fault.clone(),
            channels: self.channels.clone(),
            leases: self.leases.clone(),
            pauses: self.pauses.clone(),
            _app: PhantomData,
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let (url, options) = match &self.tls {
            Some(tls) => (
                format!("https://{addr}"),
                ChannelOptions {
                    ca: Some(tls.ca.clone()),
                    client_cert: Some((tls.cert.clone(), tls.key.clone())),
                    connect_timeout: Some(PEER_CONNECT_TIMEOUT),
                },
            ),
            None => (
                format!("http://{addr}"),
                ChannelOptions { connect_timeout: Some(PEER_CONNECT_TIMEOUT), ..Default::default() },
            ),
        };
        let channel = lazy_channel(&url, &options).map_err(|e| e.to_string())?;
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// The calls a follower makes on the leader.
enum LeaderMethod {
    Forward,
    ReadIndex,
    ChangeMembership,
}

impl<A: App> PeerNetwork<A> {
    async fn leader_call<T: DeserializeOwned>(
        &self,
        leader: NodeId,
        addr: &str,
        payload: Vec<u8>,
        method: LeaderMethod,
        timeout: Duration,
    ) -> Result<T, ForwardFailure> {
        if self.fault.verdict(leader) == Verdict::Drop {
            return Err(ForwardFailure::Unreachable("dropped by fault injection".into()));
        }
        let channel = self.channel(addr).map_err(ForwardFailure::Transport)?;
        let mut client = RaftPeerClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut request = tonic::Request::new(RaftRequest { group: self.group, from: self.node, payload });
        request.set_timeout(timeout);
        let sent = match method {
            LeaderMethod::Forward => client.forward(request).await,
            LeaderMethod::ReadIndex => client.read_index(request).await,
            LeaderMethod::ChangeMembership => client.change_membership(request).await,
        };
        let reply = sent.map_err(|status| {
            // The receiving side's fault injection refuses before acting on anything.
            if photon_client::never_sent(&status) || status.message() == "dropped by fault injection" {
                ForwardFailure::Unreachable(status.to_string())
            } else {
                ForwardFailure::Transport(status.to_string())
            }
        })?;
        let result: Result<T, ForwardFailure> = codec::decode(&reply.into_inner().payload)
            .map_err(|s| ForwardFailure::Transport(s.message().to_string()))?;
        result
    }

    /// Has the leader (`leader` at `addr`) propose `requests` as one entry; returns what
    /// applying each answered, in order.
    pub async fn forward_write(
        &self,
        leader: NodeId,
        addr: &str,
        requests: &[A::Request],
        timeout: Duration,
    ) -> Result<Vec<A::Response>, ForwardFailure> {
        let payload = codec::encode(&requests).map_err(|s| ForwardFailure::Transport(s.message().to_string()))?;
        self.leader_call(leader, addr, payload, LeaderMethod::Forward, timeout).await
    }

    /// Asks the leader for the log index a linearizable read must wait for.
    pub async fn read_index(&self, leader: NodeId, addr: &str, timeout: Duration) -> Result<u64, ForwardFailure> {
        self.leader_call(leader, addr, Vec::new(), LeaderMethod::ReadIndex, timeout).await
    }

    /// Has the leader make a membership change.
    pub async fn change_membership(
        &self,
        leader: NodeId,
        addr: &str,
        change: &openraft::ChangeMembers<NodeId, BasicNode>,
        timeout: Duration,
    ) -> Result<(), ForwardFailure> {
        let payload = codec::encode(change).map_err(|s| ForwardFailure::Transport(s.message().to_string()))?;
        self.leader_call(leader, addr, payload, LeaderMethod::ChangeMembership, timeout).await
    }
}

impl<A: App> RaftNetworkFactory<TypeConfig<A>> for PeerNetwork<A> {
    type Network = PeerClient<A>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient<A> {
        PeerClient {
            group: self.group,
            from: self.node,
            target,
            channel: self.channel(&node.addr),
            fault: self.fault.clone(),
            lease: self.lease(),
            pause: self.election_pause(),
            _app: PhantomData,
        }
    }
}

/// The connection from this node to one peer, for one group.
pub struct PeerClient<A> {
    group: u64,
    from: NodeId,
    target: NodeId,
    channel: Result<Channel, String>,
    fault: FaultInjector,
    lease: Arc<LeaseClock>,
    pause: Arc<ElectionPause>,
    _app: PhantomData<fn() -> A>,
}

enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

/// Why a message did not get an answer.
enum Failure {
    /// The peer cannot be reached (or a fault drops the message): openraft backs off.
    Unreachable(String),
    /// The call failed on the way (timeout, reset): openraft retries.
    Network(String),
}

impl Failure {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<NodeId, BasicNode, E> {
        match self {
            Failure::Unreachable(why) => RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why))),
            Failure::Network(why) => RPCError::Network(NetworkError::new(&std::io::Error::other(why))),
        }
    }
}

impl<A: App> PeerClient<A> {
    async fn call<Req: Serialize, Resp: DeserializeOwned, E>(
        &mut self,
        method: Method,
        rpc: &Req,
        timeout: Duration,
    ) -> Result<Result<Resp, E>, Failure>
    where
        E: DeserializeOwned,
    {
        match self.fault.verdict(self.target) {
            Verdict::Drop => return Err(Failure::Unreachable("dropped by fault injection".into())),
            Verdict::DeliverAfter(by) => tokio::time::sleep(by).await,
            Verdict::Deliver => {}
        }
        let channel = self.channel.clone().map_err(Failure::Unreachable)?;
        let payload = codec::encode(rpc).map_err(|s| Failure::Network(s.message().to_string()))?;
        let mut client = RaftPeerClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut request = tonic::Request::new(RaftRequest { group: self.group, from: self.from, payload });
        request.set_timeout(timeout);
        let sent = match method {
            Method::AppendEntries => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::InstallSnapshot => client.install_snapshot(request).await,
        };
        let reply = sent.map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::NotFound => Failure::Unreachable(status.to_string()),
            _ => Failure::Network(status.to_string()),
        })?;
        codec::decode(&reply.into_inner().payload).map_err(|s| Failure::Network(s.message().to_string()))
    }
}

impl<A: App> RaftNetwork<TypeConfig<A>> for PeerClient<A> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig<A>>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, OpenRaftError<NodeId>>> {
        // Taken before any fault delay: the lease may only start earlier than the follower's.
        let sent = Instant::now();
        let vote = rpc.vote;
        let result = self.call(Method::AppendEntries, &rpc, option.hard_ttl()).await.map_err(Failure::into_rpc)?;
        let response = result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))?;
        // Every answer but HigherVote means the follower accepted the vote (and restarted its
        // lease) before looking at the entries.
        if !matches!(response, AppendEntriesResponse::HigherVote(_)) {
            self.lease.acked(self.target, vote, sent);
        }
        Ok(response)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig<A>>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, OpenRaftError<NodeId, InstallSnapshotError>>>
    {
        let result = self.call(Method::InstallSnapshot, &rpc, option.hard_ttl()).await.map_err(Failure::into_rpc)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, OpenRaftError<NodeId>>> {
        let result = self.call(Method::Vote, &rpc, option.hard_ttl()).await.map_err(Failure::into_rpc)?;
        let answer = result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))?;
        Ok(self.pause.filter(&rpc, answer))
    }
}
