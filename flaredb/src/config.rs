//! FlareDB's configuration: the runtime's `[server]`, `[log]`, `[tls]` plus `[raft]`,
//! `[chainfire]`, `[limits]` and `[namespaces]`. Every key is documented in
//! `flaredb-server --help`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use photon_runtime::{LogSection, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection};
use serde::{Deserialize, Serialize};

pub const SPEC: ServiceSpec =
    ServiceSpec { name: "flaredb", env_prefix: "FLAREDB", default_port: 2479, version: env!("CARGO_PKG_VERSION") };

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlaredbConfig {
    pub server: ServerSection,
    pub log: LogSection,
    pub tls: TlsSection,
    pub raft: RaftSection,
    pub chainfire: ChainfireSection,
    pub limits: LimitsSection,
    pub regions: RegionsSection,
    pub placement: PlacementSection,
    /// Namespace name → `strong` or `eventual`. Every store of a cluster must declare the same.
    pub namespaces: BTreeMap<String, Consistency>,
}

/// How a namespace's reads behave (writes always go through the region's Raft leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    /// Reads are linearizable: confirmed with the region leader (ReadIndex) before answering.
    Strong,
    /// Reads answer from the local replica: possibly stale, never a value that was not written.
    Eventual,
}

/// `[raft]`: this store and its peer port (one port for every region, multiplexed by region id).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftSection {
    /// This store's id: unique in the cluster and never reused.
    pub node_id: u64,
    /// The peer port (Raft traffic of every region, mutual TLS).
    pub listen: SocketAddr,
    /// host:port other stores reach the peer port at; defaults to `listen`.
    pub advertise: Option<String>,
    /// The API URL clients reach this store at, published in the region map. Defaults to the
    /// API listen address; an unspecified listen IP (0.0.0.0) is replaced by the host of
    /// `raft.advertise`.
    pub advertise_api_url: Option<String>,
    /// The first stores, as `id=host:port` of their peer ports, this store included. They
    /// bootstrap the first region together.
    pub initial_peers: Vec<String>,
    /// Create the first region when the data dir holds none. `false` for a store joining a
    /// running cluster: it starts empty and placement gives it replicas.
    pub bootstrap: bool,
    /// CA that signs every peer's certificate; defaults to the API port's CA.
    pub peer_ca: Option<PathBuf>,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// Take a region snapshot (and drop older log entries) after this many entries.
    pub snapshot_after_entries: u64,
    /// Log entries kept behind a region's latest snapshot.
    pub keep_log_entries: u64,
    /// Tests only: serve `POST /debug/fault/isolate` and `/debug/fault/heal`, which cut this
    /// store's Raft traffic (every region) off and restore it. Never enable in production.
    pub fault_injection: bool,
}

/// `[chainfire]`: where the region map lives. FlareDB Requires chainfire: with none reachable
/// at start it exits non-zero.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainfireSection {
    /// chainfire API URLs, tried in turn.
    pub endpoints: Vec<String>,
    /// CA that signs chainfire's certificate; defaults to the API port's CA.
    pub ca: Option<PathBuf>,
    /// How long to keep trying chainfire at start before giving up.
    pub connect_timeout_ms: u64,
    /// Key prefix of the region map in chainfire (`<prefix>regions/<id>` → region JSON).
    pub prefix: String,
}

/// `[regions]`: when a region splits. The leader of a region checks it every
/// `check_interval_ms` and splits it at its middle key once it holds more than `split_keys`
/// keys or `split_bytes` bytes of keys and values (0 turns that trigger off).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionsSection {
    pub split_keys: u64,
    pub split_bytes: u64,
    pub check_interval_ms: u64,
}

/// `[placement]`: how replicas are spread. The placement leader (one store, elected through a
/// chainfire lease) keeps every region at `replicas` replicas on live stores (fewer while there
/// are fewer stores), moves replicas so every store holds within one of its fair share, and
/// replaces the replicas of a store that has been gone for `replace_after_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSection {
    pub replicas: usize,
    pub replace_after_ms: u64,
    /// A store whose lease lapses this long is considered gone.
    pub store_ttl_seconds: i64,
    pub interval_ms: u64,
}

/// `[limits]`: what one request may carry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Most records one Scan response (or BatchGet/BatchPut request) holds.
    pub max_batch: usize,
}

impl ServiceConfig for FlaredbConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            raft: RaftSection {
                node_id: 1,
                listen: SocketAddr::from(([127, 0, 0, 1], 2480)),
                advertise: None,
                advertise_api_url: None,
                initial_peers: Vec::new(),
                bootstrap: true,
                peer_ca: None,
                heartbeat_ms: 100,
                election_timeout_ms: 300,
                snapshot_after_entries: 10_000,
                keep_log_entries: 1000,
                fault_injection: false,
            },
            chainfire: ChainfireSection {
                endpoints: vec!["https://127.0.0.1:2379".into()],
                ca: None,
                connect_timeout_ms: 10_000,
                prefix: "/flaredb/".into(),
            },
            limits: LimitsSection { max_key_bytes: 4096, max_value_bytes: 1 << 20, max_batch: 1000 },
            placement: PlacementSection {
                replicas: 3,
                replace_after_ms: 30_000,
                store_ttl_seconds: 3,
                interval_ms: 1000,
            },
            regions: RegionsSection { split_keys: 200_000, split_bytes: 64 << 20, check_interval_ms: 1000 },
            namespaces: [("default".to_string(), Consistency::Strong)].into(),
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}

impl RaftSection {
    pub fn advertised(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| self.listen.to_string())
    }

    /// This store's API URL for an API port listening on `api` with `scheme`.
    pub fn advertised_api_url(&self, scheme: &str, api: SocketAddr) -> String {
        photon_raft::host::advertised_api_url(self.advertise_api_url.as_deref(), scheme, api, &self.advertised())
    }

    /// `initial_peers` parsed, or this store alone when empty.
    pub fn initial_members(&self) -> Result<BTreeMap<u64, String>, String> {
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
}
