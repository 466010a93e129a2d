//! FiberLB's configuration: the runtime's `[server]` (the API port, 9092), `[log]`, `[tls]`,
//! plus `[chainfire]` (where load balancers live), `[iam]` (who decides), `[secrets]` (the
//! master key sealing private keys), `[dataplane]` and `[vip]` (holding load balancers' addresses). Every key is
//! documented in `fiberlb-server --help`.

use std::path::PathBuf;

use photon_auth::IamSection;
use photon_resource::ChainfireSection;
use photon_runtime::{LogSection, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection};
use serde::{Deserialize, Serialize};

pub const SPEC: ServiceSpec =
    ServiceSpec { name: "fiberlb", env_prefix: "FIBERLB", default_port: 9092, version: env!("CARGO_PKG_VERSION") };

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiberlbConfig {
    pub server: ServerSection,
    pub log: LogSection,
    pub tls: TlsSection,
    pub chainfire: ChainfireSection,
    pub iam: IamSection,
    pub secrets: SecretsSection,
    pub dataplane: DataplaneSection,
    pub vip: VipSection,
}

/// `[vip]`: holding load balancers' addresses. Every fiberlb node on a segment may serve a
/// VIP; one at a time holds it (a chainfire lease), adds it to `interface` and announces it
/// (gratuitous ARP, IPv6 neighbour advertisement); when the holder dies another takes it over.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipSection {
    /// The interface VIPs are added to (on the segment clients reach). Unset: VIPs are not
    /// managed here (listeners still bind them, for addresses routed to this node otherwise).
    pub interface: Option<String>,
    /// The prefix length an IPv4 address is added with.
    pub prefix_len: u8,
    /// The prefix length an IPv6 address is added with.
    pub prefix_len_v6: u8,
    /// This node's name in the claim (default: the host name).
    pub node: Option<String>,
    /// How long a dead holder keeps a VIP before another takes it (a lease TTL, whole seconds).
    pub ttl_secs: u64,
}

/// `[dataplane]`: what the listeners do besides proxying.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneSection {
    /// Log every connection (L4: bytes, duration) and request (L7: method, path, status,
    /// backend, duration) at info, target `fiberlb::access`.
    pub access_log: bool,
    /// Threads that accept and proxy TCP and HTTP connections, each with its own event loop
    /// (0: one per core).
    #[serde(default)]
    pub threads: usize,
}

/// `[secrets]`: what seals listeners' private keys in chainfire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsSection {
    /// The 32-byte key (64 hex digits) sealing private keys; every fiberlb node of a cluster
    /// needs the same one. Created on first start if missing (default:
    /// `<data_dir>/fiberlb-master.key`).
    pub master_key_file: Option<PathBuf>,
}

impl ServiceConfig for FiberlbConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            chainfire: ChainfireSection::default(),
            iam: IamSection::default(),
            secrets: SecretsSection { master_key_file: None },
            dataplane: DataplaneSection { access_log: true, threads: 0 },
            vip: VipSection { interface: None, prefix_len: 32, prefix_len_v6: 128, node: None, ttl_secs: 2 },
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}
