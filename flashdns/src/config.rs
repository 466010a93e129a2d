//! FlashDNS's configuration: the runtime's `[server]` (the API port, 853, which also serves
//! DNS over TLS), `[log]`, `[tls]`, plus `[dns]` (the UDP and TCP port), `[chainfire]` (where
//! zones live) and `[iam]` (who decides). Every key is documented in `flashdns-server --help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use photon_resource::ChainfireSection;
use photon_runtime::{LogSection, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection};
use serde::{Deserialize, Serialize};

pub const SPEC: ServiceSpec =
    ServiceSpec { name: "flashdns", env_prefix: "FLASHDNS", default_port: 853, version: env!("CARGO_PKG_VERSION") };

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlashdnsConfig {
    pub server: ServerSection,
    pub log: LogSection,
    pub tls: TlsSection,
    pub dns: DnsSection,
    pub chainfire: ChainfireSection,
    pub iam: IamSection,
}

/// `[dns]`: plain DNS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    /// Address for DNS over UDP and TCP (port 53 needs CAP_NET_BIND_SERVICE).
    pub listen: SocketAddr,
    /// Tasks answering UDP (0: one per CPU).
    pub udp_workers: usize,
}

/// `[iam]`: who authorizes API calls (tokens are verified locally against IAM's keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamSection {
    pub url: String,
    /// CA of IAM's certificate; defaults to the API port's CA.
    pub ca: Option<PathBuf>,
    /// How long an authorization decision is reused.
    pub cache_ttl_ms: u64,
}

impl ServiceConfig for FlashdnsConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            dns: DnsSection { listen: SocketAddr::from(([0, 0, 0, 0], 53)), udp_workers: 0 },
            chainfire: ChainfireSection::default(),
            iam: IamSection { url: "https://127.0.0.1:8080".into(), ca: None, cache_ttl_ms: 10_000 },
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}
