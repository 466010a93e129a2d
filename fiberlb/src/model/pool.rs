//! A pool: the backends traffic is spread over, how (algorithm, affinity), and how backends
//! are treated when they fail or return.

use photon_resource::{FieldError, Kind};
use serde::{Deserialize, Serialize};

use photon_resource::check_range;

pub struct Pool;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    /// Two backends picked at random, the one with fewer connections taken.
    PowerOfTwo,
    /// Consistent hashing (Maglev) on `hash_on`.
    Maglev,
}

/// What consistent hashing and session affinity key on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashOn {
    SourceAddress,
    /// An HTTP request header (L7 listeners only).
    Header { name: String },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProxyProtocol {
    #[default]
    None,
    V1,
    V2,
}

/// How L7 listeners talk to the pool's backends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendProtocol {
    #[default]
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (h2c): gRPC services, whatever the client
    /// speaks (HTTP/1.1 or HTTP/2).
    Http2,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Maglev's key (required for it).
    #[serde(default)]
    pub hash_on: Option<HashOn>,
    /// Session affinity: a client keeps its backend while it is up (by this key).
    #[serde(default)]
    pub affinity: Option<HashOn>,
    /// PROXY protocol header sent to backends (L4 listeners).
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    /// HTTP/1.1 or HTTP/2 to the backends (L7 listeners).
    #[serde(default)]
    pub backend_protocol: BackendProtocol,
    /// A backend that returns gets its share of traffic ramped up over this long (0: at once).
    #[serde(default)]
    pub slow_start_ms: u64,
    /// Passive ejection: this many failures in a row take a backend out (0: never)...
    #[serde(default = "failures")]
    pub eject_after_failures: u32,
    /// ...for this long, after which it is tried again.
    #[serde(default = "ejection")]
    pub ejection_ms: u64,
}

fn failures() -> u32 {
    5
}

fn ejection() -> u64 {
    30_000
}

fn check_hash_on(field: &str, key: &HashOn) -> Result<(), FieldError> {
    match key {
        HashOn::SourceAddress => Ok(()),
        HashOn::Header { name } => http::HeaderName::from_bytes(name.as_bytes())
            .map(|_| ())
            .map_err(|_| FieldError::new(format!("{field}.header.name"), format!("{name:?} is not a header name"))),
    }
}

impl Kind for Pool {
    type Spec = PoolSpec;
    const NAME: &'static str = "pool";
    const PATH: &'static [&'static str] = &["loadbalancers", "pools"];

    fn validate(spec: &PoolSpec) -> Result<(), FieldError> {
        match (&spec.algorithm, &spec.hash_on) {
            (Algorithm::Maglev, None) => {
                return Err(FieldError::new("spec.hash_on", "maglev needs a key: source_address or a header"));
            }
            (Algorithm::Maglev, Some(key)) => check_hash_on("spec.hash_on", key)?,
            (_, Some(_)) => return Err(FieldError::new("spec.hash_on", "only the maglev algorithm hashes")),
            (_, None) => {}
        }
        if let Some(key) = &spec.affinity {
            check_hash_on("spec.affinity", key)?;
        }
        check_range("spec.slow_start_ms", spec.slow_start_ms, 0..=3_600_000)?;
        check_range("spec.eject_after_failures", spec.eject_after_failures, 0..=1000)?;
        check_range("spec.ejection_ms", spec.ejection_ms, 1_000..=3_600_000)?;
        Ok(())
    }
}
