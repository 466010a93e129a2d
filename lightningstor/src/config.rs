//! LightningStor's configuration: the runtime's `[server]`, `[log]`, `[tls]` (the management
//! API port, 9093) plus `[s3]`, `[flaredb]`, `[iam]`, `[storage]`, `[replication]`,
//! `[chainfire]` (where volumes are kept as resources) and `[volumes]` (how they are served).
//! Every key is documented in `lightningstor-server --help`.

use std::net::SocketAddr;

use flaredb_client::records::FlaredbSection;
use photon_auth::IamSection;
use photon_resource::ChainfireSection;
use photon_runtime::{LogSection, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection};
use serde::{Deserialize, Serialize};

pub const SPEC: ServiceSpec = ServiceSpec {
    name: "lightningstor",
    env_prefix: "LIGHTNINGSTOR",
    default_port: 9093,
    version: env!("CARGO_PKG_VERSION"),
};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightningstorConfig {
    pub server: ServerSection,
    pub log: LogSection,
    pub tls: TlsSection,
    pub s3: S3Section,
    /// Where bucket and object metadata live.
    pub flaredb: FlaredbSection,
    pub iam: IamSection,
    pub storage: StorageSection,
    pub replication: ReplicationSection,
    /// Where volumes and snapshots are kept (as tenant resources).
    pub chainfire: ChainfireSection,
    pub volumes: VolumesSection,
}

/// `[volumes]`: block volumes served from this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumesSection {
    /// The NBD server (QEMU's most direct path to a volume), TLS with the API port's
    /// certificate.
    pub nbd_listen: SocketAddr,
    /// NBD without TLS (a storage network of its own, or a benchmark): export tokens then
    /// cross the wire in the clear.
    pub nbd_plaintext: bool,
    /// The iSCSI target (one target per volume, CHAP per attachment).
    pub iscsi_listen: SocketAddr,
}

/// `[s3]`: the S3 endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    pub listen: SocketAddr,
    /// Serve S3 over plain HTTP (only for tools on loopback); TLS with the API port's
    /// certificate otherwise.
    pub plaintext: bool,
    /// The region clients sign for (`GetBucketLocation` answers it).
    pub region: String,
    /// The endpoint's domain, for virtual-host style (`<bucket>.<domain>`); empty: path style.
    pub domain: String,
    /// The largest single PUT or part (multipart uploads go beyond).
    pub max_object_bytes: u64,
    /// The smallest part of a multipart upload, but for the last (S3's 5 MiB).
    pub min_part_bytes: u64,
}

// `[iam]` is photon-auth's `IamSection`. LightningStor acts as a service account that needs
// `iam:access-keys:resolve` and `iam:principals:authorize` at system scope; its credentials file
// is read at start.

/// `[storage]`: object data on this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub chunk_bytes: usize,
    /// How long the chunks of deleted or overwritten data stay on disk before they are deleted
    /// in the background (space comes back after it; 0: at once).
    pub delete_delay_ms: u64,
    /// Objects of at most this many bytes are kept inside their metadata record in flaredb, not
    /// as chunk files: one durable write instead of a chunk's and the record's (0: never).
    pub inline_bytes: usize,
    /// How often this node looks for chunk files no record names (left by a crash between
    /// writing an object's data and its record) and deletes them (0: never).
    pub sweep_interval_ms: u64,
    /// Only chunk files at least this old are swept: an upload names its chunks in a record
    /// well within it.
    pub orphan_grace_ms: u64,
    /// How often this node reads and verifies every chunk it holds, rewriting bad copies from a
    /// replica (0: never).
    pub scrub_interval_ms: u64,
    /// How fast a scrub reads (bytes a second; 0: as fast as the disk).
    pub scrub_bytes_per_sec: u64,
}

/// `[replication]`: the other nodes that hold copies of this node's chunks. With no peers the
/// node stores everything itself and serves no replication port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSection {
    /// This node's name in chunk placements, unique in the cluster (empty: the host name).
    pub node_id: String,
    /// The replication port (mutual TLS with the platform CA).
    pub listen: SocketAddr,
    /// The other nodes, each `<node id>=<https://host:9094>`.
    pub peers: Vec<String>,
    /// Copies of each chunk (at most the number of nodes); a write needs a majority of them.
    pub copies: usize,
    /// How long one replica write or read may take.
    pub timeout_ms: u64,
    /// How often a node works off the repairs it owes.
    pub repair_interval_ms: u64,
}

impl ReplicationSection {
    /// `(id, url)` of each peer, or what is wrong with an entry.
    pub fn peer_list(&self) -> Result<Vec<(String, String)>, String> {
        self.peers
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((id, url)) if !id.trim().is_empty() && url.contains("://") => {
                    Ok((id.trim().to_string(), url.trim().to_string()))
                }
                _ => Err(format!("replication.peers entry {entry:?} is not <node id>=<https://host:port>")),
            })
            .collect()
    }
}

impl ServiceConfig for LightningstorConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            s3: S3Section {
                listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
                plaintext: false,
                region: "us-east-1".into(),
                domain: String::new(),
                max_object_bytes: 5 << 30,
                min_part_bytes: 5 << 20,
            },
            flaredb: FlaredbSection::local("lightningstor/"),
            iam: IamSection::default(),
            storage: StorageSection {
                chunk_bytes: 8 << 20,
                delete_delay_ms: 600_000,
                inline_bytes: 16 << 10,
                sweep_interval_ms: 6 * 3_600_000,
                orphan_grace_ms: 24 * 3_600_000,
                scrub_interval_ms: 7 * 24 * 3_600_000,
                scrub_bytes_per_sec: 64 << 20,
            },
            replication: ReplicationSection {
                node_id: String::new(),
                listen: SocketAddr::from(([127, 0, 0, 1], 9094)),
                peers: Vec::new(),
                copies: 3,
                timeout_ms: 10_000,
                repair_interval_ms: 2_000,
            },
            chainfire: ChainfireSection::default(),
            volumes: VolumesSection {
                nbd_listen: SocketAddr::from(([0, 0, 0, 0], 10809)),
                nbd_plaintext: false,
                iscsi_listen: SocketAddr::from(([0, 0, 0, 0], 3260)),
            },
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}
