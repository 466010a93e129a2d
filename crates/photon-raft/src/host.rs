//! The Raft side of one server process, shared by every service that runs Raft groups: the peer
//! port (one listener, multiplexed by group id), the peer TLS, the fault injector, and the
//! lifecycle chores of each group (bootstrap, shutdown with the process).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use openraft::{BasicNode, Raft};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::fault::FaultInjector;
use crate::network::{serve, PeerNetwork, PeerTls, Router};
use crate::{App, NodeId, RaftError, TypeConfig};

/// The peer port of a process and what its groups share.
pub struct PeerHost<A: App> {
    node: NodeId,
    router: Router<A>,
    fault: FaultInjector,
    /// Connections and leader leases every group of the process shares.
    base: PeerNetwork<A>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl<A: App> PeerHost<A> {
    /// Binds the peer port on `listen` and serves it until `shutdown`. Without `tls` the port
    /// speaks plaintext (development only), which is logged.
    pub async fn start(
        node: NodeId,
        listen: SocketAddr,
        tls: Option<PeerTls>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Self, RaftError> {
        if tls.is_none() {
            tracing::warn!("no CA and certificate for peers: the Raft port speaks plaintext");
        }
        let fault = FaultInjector::default();
        let router = Router::new(fault.clone());
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| RaftError::Transport(format!("cannot listen on the Raft port {listen}: {e}")))?;
        tracing::info!(node_id = node, peer_port = %listen, mutual_tls = tls.is_some(), "raft peer port listening");
        let (serving, peer_tls, stop) = (router.clone(), tls.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(e) = serve(listener, serving, peer_tls.as_ref(), stop).await {
                tracing::error!(error = %e, "raft peer port stopped");
            }
        });
        let base = PeerNetwork::new(0, node, tls.clone(), fault.clone());
        Ok(Self { node, router, fault, base, shutdown, tasks })
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The network group `group` sends its Raft messages through.
    pub fn network(&self, group: u64) -> PeerNetwork<A> {
        self.base.for_group(group)
    }

    /// This process's fault injector (tests cut peers off through it).
    pub fn fault(&self) -> &FaultInjector {
        &self.fault
    }

    /// Stops serving group `group` on the peer port.
    pub fn remove(&self, group: u64) {
        self.router.remove(group);
    }

    /// Serves `raft` as group `group` on the peer port, and shuts it down with the process.
    pub fn add(&self, group: u64, raft: &Raft<TypeConfig<A>>) {
        self.router.add(group, raft.clone());
        let (stopping, shutdown) = (raft.clone(), self.shutdown.clone());
        self.tasks.spawn(async move {
            shutdown.cancelled().await;
            if let Err(e) = stopping.shutdown().await {
                tracing::warn!(group, error = %e, "raft group did not shut down cleanly");
            }
        });
    }
}

/// The peer TLS from a CA and this node's certificate, when both are known.
pub fn peer_tls(ca: Option<PathBuf>, identity: Option<(PathBuf, PathBuf)>) -> Option<PeerTls> {
    match (ca, identity) {
        (Some(ca), Some((cert, key))) => Some(PeerTls { ca, cert, key }),
        _ => None,
    }
}

/// Initializes a new group of `members` unless it already exists. Every bootstrap member calls
/// this with the same members; one that has already heard from an initialized peer is told so,
/// which is fine.
pub async fn bootstrap<A: App>(
    raft: &Raft<TypeConfig<A>>,
    members: BTreeMap<NodeId, String>,
) -> Result<(), openraft::error::Fatal<NodeId>> {
    if raft.is_initialized().await? {
        return Ok(());
    }
    let size = members.len();
    let members: BTreeMap<NodeId, BasicNode> = members.into_iter().map(|(id, addr)| (id, BasicNode { addr })).collect();
    match raft.initialize(members).await {
        Ok(()) => tracing::info!(members = size, "bootstrapped a new raft group"),
        Err(e) => tracing::info!(reason = %e, "raft group already initialized"),
    }
    Ok(())
}

/// The first members of a group from `initial_peers` entries (`id=host:port`, this node
/// included), or this node alone at `advertised` when there are none. Errors name the entry.
pub fn initial_members(
    initial_peers: &[String],
    node: NodeId,
    advertised: &str,
) -> Result<BTreeMap<NodeId, String>, String> {
    if initial_peers.is_empty() {
        return Ok([(node, advertised.to_string())].into());
    }
    let mut members = BTreeMap::new();
    for peer in initial_peers {
        let (id, addr) =
            peer.split_once('=').ok_or_else(|| format!("raft.initial_peers entry {peer:?} is not id=host:port"))?;
        let id: NodeId =
            id.trim().parse().map_err(|_| format!("raft.initial_peers entry {peer:?}: {id:?} is not a node id"))?;
        if members.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("raft.initial_peers names node {id} twice"));
        }
    }
    if !members.contains_key(&node) {
        return Err(format!("raft.initial_peers does not include this member (raft.node_id {node})"));
    }
    Ok(members)
}

/// Raft timing and log retention, as every service's `[raft]` section states them.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub heartbeat_ms: u64,
    /// The election timeout is drawn from [this, 1.5 times this). openraft also makes a follower
    /// wait out the longest timeout after the last heartbeat before its own timeout starts, so a
    /// leader's death is noticed after 2.5–3 times this: a narrower spread keeps failover short
    /// (a candidate with a shorter log loses and the next one waits a whole timeout again).
    pub election_timeout_ms: u64,
    pub snapshot_after_entries: u64,
    pub keep_log_entries: u64,
}

/// openraft's configuration for a group of cluster `name`; an error names what is invalid.
pub fn raft_config(name: &str, timing: Timing) -> Result<std::sync::Arc<openraft::Config>, String> {
    let config = openraft::Config {
        cluster_name: name.into(),
        heartbeat_interval: timing.heartbeat_ms,
        election_timeout_min: timing.election_timeout_ms,
        election_timeout_max: timing.election_timeout_ms * 3 / 2,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(timing.snapshot_after_entries),
        max_in_snapshot_log_to_keep: timing.keep_log_entries,
        ..Default::default()
    };
    config.validate().map(std::sync::Arc::new).map_err(|e| format!("invalid [raft] timing settings: {e}"))
}

/// The API URL a member advertises to clients: `explicit` when set, else `scheme://api`, with an
/// unspecified listen IP (0.0.0.0) replaced by the host of the member's advertised peer address.
pub fn advertised_api_url(explicit: Option<&str>, scheme: &str, api: SocketAddr, peer_advertised: &str) -> String {
    if let Some(url) = explicit {
        return url.to_string();
    }
    if !api.ip().is_unspecified() {
        return format!("{scheme}://{api}");
    }
    let host = peer_advertised.rsplit_once(':').map_or(peer_advertised, |(host, _)| host);
    format!("{scheme}://{host}:{}", api.port())
}
