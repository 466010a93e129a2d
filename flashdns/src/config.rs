//! FlashDNS's configuration: the runtime's `[server]` (the API port, 853, which also serves
//! DNS over TLS), `[log]`, `[tls]`, plus `[dns]` (the UDP and TCP port), `[chainfire]` (where
//! zones live), `[iam]` (who decides) and `[transfer]` (secondaries' keys, the IXFR journal).
//! Every key is documented in `flashdns-server --help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use photon_auth::IamSection;
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
    pub dnssec: DnssecSection,
    pub transfer: TransferSection,
}

/// `[dns]`: plain DNS.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    /// Address for DNS over UDP and TCP (port 53 needs CAP_NET_BIND_SERVICE).
    pub listen: SocketAddr,
    /// Threads answering UDP, each on its own socket (0: one per CPU).
    pub udp_workers: usize,
    /// Response rate limiting over UDP: responses a second toward one client network (/24,
    /// /56) for one kind of answer (rcode and zone); 0 turns it off.
    pub rrl_responses_per_sec: u32,
    /// Of the responses over the limit, every `rrl_slip`-th is sent truncated so real clients
    /// retry over TCP; the rest are dropped (0: drop all).
    pub rrl_slip: u32,
    /// Networks never rate limited (local resolvers, health checks).
    pub rrl_exempt: Vec<String>,
}

/// `[transfer]`: zone transfers (AXFR, IXFR) to the secondaries a zone lists, and NOTIFY.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSection {
    /// TSIG keys secondaries sign with, each `<name>:hmac-sha256:<base64 secret>`
    /// (hmac-sha384 and hmac-sha512 also work); a zone's secondary names one.
    pub keys: Vec<String>,
    /// Changes kept per zone for IXFR; a secondary further behind gets the whole zone (0: none).
    pub journal_max: u32,
}

/// `[dnssec]`: signing zones.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnssecSection {
    /// The 32-byte key (64 hex digits) sealing zones' private keys in chainfire; every flashdns
    /// node of a cluster needs the same one. Created on first start if missing (default:
    /// `<data_dir>/dnssec-master.key`).
    pub master_key_file: Option<PathBuf>,
}

impl ServiceConfig for FlashdnsConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            dns: DnsSection {
                listen: SocketAddr::from(([0, 0, 0, 0], 53)),
                udp_workers: 0,
                rrl_responses_per_sec: 20,
                rrl_slip: 2,
                rrl_exempt: vec!["127.0.0.0/8".into(), "::1/128".into()],
            },
            chainfire: ChainfireSection::default(),
            dnssec: DnssecSection { master_key_file: None },
            iam: IamSection::default(),
            transfer: TransferSection { keys: Vec::new(), journal_max: 1000 },
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}
