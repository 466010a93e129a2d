//! Chainfire's configuration: the runtime's `[server]`, `[log]`, `[tls]` plus `[raft]` and
//! `[limits]`. Every key is documented in `chainfire-server --help`.

use std::net::SocketAddr;

use photon_runtime::{LogSection, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection};
use serde::{Deserialize, Serialize};

pub const SPEC: ServiceSpec =
    ServiceSpec { name: "chainfire", env_prefix: "CHAINFIRE", default_port: 2379, version: env!("CARGO_PKG_VERSION") };

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainfireConfig {
    pub server: ServerSection,
    pub log: LogSection,
    pub tls: TlsSection,
    pub raft: RaftSection,
    pub limits: LimitsSection,
    pub watch: WatchSection,
    pub gossip: GossipSection,
}

/// `[gossip]`: node membership on the gossip port (SWIM). Runs when `key_file` is set; the
/// Raft leader publishes the member table under `prefix` (docs/operations.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GossipSection {
    /// The UDP port's address (only bound when `key_file` is set).
    pub listen: SocketAddr,
    /// host:port other nodes reach the gossip port at; defaults to `listen` (an unspecified
    /// listen IP is replaced by the host of `raft.advertise`).
    pub advertise: Option<String>,
    /// This node's id in the membership; defaults to the host name.
    pub node_name: Option<String>,
    /// host:port of other nodes' gossip ports, announced to until they are members.
    pub seeds: Vec<String>,
    /// File holding the cluster's shared gossip key (at least 32 bytes). No file: no gossip.
    pub key_file: Option<std::path::PathBuf>,
    /// This node's roles, advertised: control-plane and/or worker.
    pub roles: Vec<String>,
    /// The services on this node whose `/health` is advertised, as `name=https://host:port`
    /// (chainfire itself is always included).
    pub services: Vec<String>,
    /// Where the member table lives in the store, one key per node.
    pub prefix: String,
    pub probe_period_ms: u64,
    pub probe_rtt_ms: u64,
    /// How long a suspected node has to answer before it is declared dead.
    pub suspect_to_down_ms: u64,
}

/// `[watch]`: watch stream behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchSection {
    /// How often an idle watcher that asked for progress notifications hears the current
    /// revision (etcd: 10 minutes).
    pub progress_notify_ms: u64,
}

/// `[raft]`: this member and its peer port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftSection {
    /// This member's id: unique in the cluster and never reused.
    pub node_id: u64,
    /// The peer port (Raft traffic, mutual TLS).
    pub listen: SocketAddr,
    /// host:port other members reach the peer port at; defaults to `listen`.
    pub advertise: Option<String>,
    /// The API URL clients reach this member at, which MemberList shows every client (etcd's
    /// --advertise-client-urls). Defaults to the API listen address; an unspecified listen IP
    /// (0.0.0.0) is replaced by the host of `raft.advertise`.
    pub advertise_client_url: Option<String>,
    /// Start a new cluster when the data dir holds none yet: of `initial_peers` if set (every
    /// bootstrap member lists the same peers), else of this member alone.
    pub bootstrap: bool,
    /// The first members, as `id=host:port` of their peer ports, this member included.
    pub initial_peers: Vec<String>,
    /// Join a running cluster through this member's API URL (e.g. `https://node01:2379`)
    /// when the data dir holds no cluster yet: added as a learner, then promoted.
    pub join: Option<String>,
    /// CA that signs every peer's certificate; defaults to the API port's CA.
    pub peer_ca: Option<std::path::PathBuf>,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// Take a snapshot (and drop older log entries) after this many entries.
    pub snapshot_after_entries: u64,
    /// Log entries kept behind the latest snapshot, so a briefly lagging member catches up from
    /// the log; one further behind gets the snapshot.
    pub keep_log_entries: u64,
    /// After joining, ask to be promoted to a voter once caught up; false keeps this member a
    /// learner (worker nodes: a local replica that serves reads and forwards writes, no vote).
    pub promote: bool,
    /// Tests only: serve `POST /debug/fault/isolate` and `/debug/fault/heal`, which cut this
    /// member's Raft traffic off and restore it. Never enable in production.
    pub fault_injection: bool,
}

/// `[limits]`: what one request may ask, with etcd's defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Largest request accepted (etcd's --max-request-bytes).
    pub max_request_bytes: usize,
    /// Most operations in one transaction branch (etcd's --max-txn-ops).
    pub max_txn_ops: usize,
    /// Database size past which writes that add data are refused with NOSPACE until
    /// compaction and defragmentation free space and the alarm is disarmed (etcd's
    /// --quota-backend-bytes). 0: no quota.
    pub quota_backend_bytes: u64,
}

impl ServiceConfig for ChainfireConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            raft: RaftSection {
                node_id: 1,
                listen: SocketAddr::from(([127, 0, 0, 1], 2380)),
                advertise: None,
                advertise_client_url: None,
                bootstrap: true,
                initial_peers: Vec::new(),
                join: None,
                peer_ca: None,
                heartbeat_ms: 100,
                election_timeout_ms: 300,
                snapshot_after_entries: 10_000,
                keep_log_entries: 1000,
                promote: true,
                fault_injection: false,
            },
            limits: LimitsSection { max_request_bytes: 1536 * 1024, max_txn_ops: 128, quota_backend_bytes: 2 << 30 },
            watch: WatchSection { progress_notify_ms: 600_000 },
            gossip: GossipSection {
                listen: SocketAddr::from(([0, 0, 0, 0], photon_runtime::cluster_config::GOSSIP_PORT)),
                advertise: None,
                node_name: None,
                seeds: Vec::new(),
                key_file: None,
                roles: Vec::new(),
                services: Vec::new(),
                prefix: "/photoncloud/nodes/".into(),
                probe_period_ms: 500,
                probe_rtt_ms: 200,
                suspect_to_down_ms: 1000,
            },
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}

impl RaftSection {
    /// `initial_peers` parsed, or this member alone when empty.
    pub fn bootstrap_members(&self) -> Result<std::collections::BTreeMap<u64, String>, String> {
        photon_raft::host::initial_members(&self.initial_peers, self.node_id, &self.advertised())
    }

    pub fn timing(&self) -> photon_raft::host::Timing {
        photon_raft::host::Timing {
            heartbeat_ms: self.heartbeat_ms,
            election_timeout_ms: self.election_timeout_ms,
            snapshot_after_entries: self.snapshot_after_entries,
            keep_log_entries: self.keep_log_entries,
        }
    }

    pub fn advertised(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| self.listen.to_string())
    }

    /// This member's client URL for an API port listening on `api` with `scheme`.
    pub fn advertised_client_url(&self, scheme: &str, api: SocketAddr) -> String {
        photon_raft::host::advertised_api_url(self.advertise_client_url.as_deref(), scheme, api, &self.advertised())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raft(advertise: Option<&str>, client_url: Option<&str>) -> RaftSection {
        let mut raft = ChainfireConfig::defaults(&SPEC).raft;
        raft.advertise = advertise.map(str::to_string);
        raft.advertise_client_url = client_url.map(str::to_string);
        raft
    }

    #[test]
    fn the_client_url_is_explicit_or_derived_from_the_listen_address() {
        let api = SocketAddr::from(([127, 0, 0, 1], 2379));
        let any = SocketAddr::from(([0, 0, 0, 0], 2379));
        assert_eq!(raft(None, None).advertised_client_url("https", api), "https://127.0.0.1:2379");
        assert_eq!(raft(Some("node01:2380"), None).advertised_client_url("https", any), "https://node01:2379");
        let explicit = raft(Some("node01:2380"), Some("https://db.example:443"));
        assert_eq!(explicit.advertised_client_url("https", any), "https://db.example:443");
    }
}
