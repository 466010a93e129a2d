//! LightningStor's configuration: the runtime's `[server]`, `[log]`, `[tls]` (the management
//! API port, 9093) plus `[s3]`, `[flaredb]`, `[iam]` and `[storage]`. Every key is documented in
//! `lightningstor-server --help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use flaredb_client::records::FlaredbSection;
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

/// `[iam]`: who checks signatures and decides. LightningStor acts as a service account that
/// needs `iam:access-keys:resolve` and `iam:principals:authorize` at system scope; its
/// credentials file (`{"key_id","secret"}`, as IAM's `bootstrap.services` writes it) is read at
/// start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamSection {
    pub url: String,
    /// CA of IAM's certificate; defaults to the API port's CA.
    pub ca: Option<PathBuf>,
    pub credentials_file: Option<PathBuf>,
    /// How long an authorization decision or a resolved access key is reused.
    pub cache_ttl_ms: u64,
}

/// `[storage]`: object data on this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    pub chunk_bytes: usize,
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
            iam: IamSection {
                url: "https://127.0.0.1:8080".into(),
                ca: None,
                credentials_file: None,
                cache_ttl_ms: 10_000,
            },
            storage: StorageSection { chunk_bytes: 8 << 20 },
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}
