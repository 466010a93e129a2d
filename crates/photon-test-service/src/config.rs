//! The test service's configuration: the runtime's sections plus `[test]`.

use std::path::PathBuf;

use photon_runtime::{HealthStatus, LogSection, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestServiceConfig {
    pub server: ServerSection,
    pub log: LogSection,
    pub tls: TlsSection,
    pub test: TestSection,
    pub auth: AuthSection,
}

/// `[auth]`: put the demo routes behind IAM through the shared auth guard (off when
/// `iam_url` is empty).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub iam_url: String,
    /// CA that signs IAM's certificate; defaults to the API port's CA.
    pub ca: Option<PathBuf>,
    pub decision_ttl_ms: u64,
}

/// `[test]`: behaviour a test scripts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSection {
    /// Name reported in health and records.
    pub name: String,
    /// What `/health` reports.
    pub health: HealthStatus,
    /// Exit with status 3 this long after start (0: never).
    pub crash_after_ms: u64,
    /// Crash only on the first start in this data dir (a marker file remembers it).
    pub crash_once: bool,
    /// Append "<name> start|stop <unix ms> <pid>" lines to this file.
    pub record: Option<PathBuf>,
    /// Also serve the REST routes on this address (a second port, as LightningStor's S3 port).
    pub extra_listen: Option<std::net::SocketAddr>,
    /// Serve the extra port in plaintext instead of TLS.
    pub extra_plaintext: bool,
}

impl ServiceConfig for TestServiceConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            test: TestSection {
                name: spec.name.to_string(),
                health: HealthStatus::Healthy,
                crash_after_ms: 0,
                crash_once: false,
                record: None,
                extra_listen: None,
                extra_plaintext: false,
            },
            auth: AuthSection { iam_url: String::new(), ca: None, decision_ttl_ms: 10_000 },
        }
    }
    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}
