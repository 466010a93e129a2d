//! IAM's configuration: the runtime's `[server]`, `[log]`, `[tls]` plus `[flaredb]`, `[tokens]`,
//! `[keys]` and `[audit]`. Every key is documented in `iam-server --help`.

use std::path::PathBuf;

use flaredb_client::records::FlaredbSection;
use photon_runtime::{LogSection, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection};
use serde::{Deserialize, Serialize};

pub const SPEC: ServiceSpec =
    ServiceSpec { name: "iam", env_prefix: "IAM", default_port: 8080, version: env!("CARGO_PKG_VERSION") };

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamConfig {
    pub server: ServerSection,
    pub log: LogSection,
    pub tls: TlsSection,
    /// Where IAM keeps everything. IAM Requires flaredb: with none reachable at start it exits
    /// non-zero.
    pub flaredb: FlaredbSection,
    pub tokens: TokensSection,
    pub keys: KeysSection,
    pub audit: AuditSection,
    pub bootstrap: BootstrapSection,
}

/// `[bootstrap]`: what first boot provisions besides the first administrator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSection {
    /// Platform services that act on IAM's behalf (e.g. `lightningstor`, which resolves S3
    /// access keys): each gets a service account `sa:platform/services/<name>` allowed to resolve
    /// access keys and authorize other principals, and its credentials written once to
    /// `<data_dir>/services/<name>.json` (mode 0600) for that service to read. `prismnet` is
    /// also allowed to keep zones in the platform's project (its VPCs' names in FlashDNS).
    pub services: Vec<String>,
}

/// `[tokens]`: lifetimes and the issuer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensSection {
    /// The `iss` of every token and the OIDC issuer; empty: this server's URL.
    pub issuer: String,
    pub access_ttl_seconds: i64,
    pub refresh_ttl_seconds: i64,
    /// How often this replica reloads signing keys, policies and revocations written by others
    /// (the bound on how late a revocation or binding change reaches it).
    pub refresh_ms: u64,
}

/// `[keys]`: the server key that seals access-key secrets and signing keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    /// 32 bytes as hex; created (mode 0600) when missing. Every IAM replica needs the same
    /// file. Default: `<data_dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
}

/// `[audit]`: how long audit entries are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    pub retention_days: u64,
}

impl ServiceConfig for IamConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            flaredb: FlaredbSection::local("iam/"),
            tokens: TokensSection {
                issuer: String::new(),
                access_ttl_seconds: 900,
                refresh_ttl_seconds: 86_400,
                refresh_ms: 1000,
            },
            keys: KeysSection { master_key_file: None },
            audit: AuditSection { retention_days: 90 },
            bootstrap: BootstrapSection { services: Vec::new() },
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}

impl IamConfig {
    pub fn master_key_file(&self) -> PathBuf {
        self.keys.master_key_file.clone().unwrap_or_else(|| self.server.data_dir.join("master.key"))
    }
}
