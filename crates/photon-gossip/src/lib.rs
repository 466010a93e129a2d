//! Node membership for PhotonCloud: every node of a cluster, control plane and workers alike,
//! runs SWIM gossip (the `foca` crate) on its gossip port (2381). Each node advertises its id,
//! addresses, roles and the health of its services; failures are found by SWIM's probes and
//! suspicion, so a dead node is declared within a few probe periods and a suspected node that
//! answers is not. Packets are authenticated with the cluster's gossip key (`envelope`), so a
//! stranger can neither join nor forge a death.
//!
//! This crate knows nothing of chainfire: chainfire runs the agent and publishes the table.

mod advert;
mod agent;
mod envelope;
mod identity;

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

pub use advert::{NodeInfo, ServiceHealth};
pub use agent::Gossip;
pub use envelope::{Envelope, Rejected};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id (cluster-config.json's `node_id`).
    pub node: String,
    pub listen: SocketAddr,
    /// The address other nodes reach the gossip port at; defaults to the bound address.
    pub advertise: Option<SocketAddr>,
    /// `host:port` of other nodes' gossip ports to announce to until they are members.
    pub seeds: Vec<String>,
    /// The cluster's shared gossip key (HMAC-SHA256).
    pub key: Vec<u8>,
    pub roles: Vec<String>,
    /// This node's chainfire API URL, advertised to the others.
    pub api_url: String,
    pub timing: Timing,
}

/// Failure detection timing. A dead node is declared within about one probe period plus the
/// round trip plus the suspicion time (and the gossip that spreads it).
#[derive(Debug, Clone)]
pub struct Timing {
    pub probe_period: Duration,
    /// How long a direct probe waits before asking others to probe indirectly.
    pub probe_rtt: Duration,
    /// How long a suspected node has to refute the suspicion before it is declared dead.
    pub suspect_to_down: Duration,
    /// How often missing seeds and dead members are announced to (formation, healing).
    pub rejoin_every: Duration,
    /// How often this node re-sends its advert even if nothing changed.
    pub advert_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(500),
            probe_rtt: Duration::from_millis(200),
            suspect_to_down: Duration::from_millis(1000),
            rejoin_every: Duration::from_secs(1),
            advert_every: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    Alive,
    /// Missed a probe; treated as alive until it refutes or the suspicion times out.
    Suspect,
    Dead,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Dead => "dead",
        }
    }
}

/// One node as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub node: String,
    /// Its gossip address.
    pub addr: SocketAddr,
    pub state: MemberState,
    /// When this node saw it enter `state` (ms since the epoch).
    pub since_ms: i64,
    /// What it last advertised (none until its first advert arrives).
    pub info: Option<NodeInfo>,
    pub is_self: bool,
}
