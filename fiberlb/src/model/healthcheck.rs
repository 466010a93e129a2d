//! A pool's active health check: how each backend is probed, how often, and how many results
//! in a row turn it up (rise) or down (fall).

use photon_resource::{FieldError, Kind};
use serde::{Deserialize, Serialize};

use photon_resource::check_range;

pub struct HealthCheck;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// A TCP connection that opens.
    Tcp,
    /// An HTTP request answered with the expected status.
    Http,
    /// The same over TLS (the backend's certificate is not verified: it is ours to probe).
    Https,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSpec {
    pub probe: Probe,
    /// HTTP(S): the path requested.
    #[serde(default = "root")]
    pub path: String,
    /// HTTP(S): the status that means healthy (a class like 200 means exactly 200).
    #[serde(default = "ok")]
    pub expected_status: u16,
    #[serde(default = "interval")]
    pub interval_ms: u64,
    /// How long one probe may take (default: 1 s, or the interval if shorter).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default = "rise")]
    pub rise: u32,
    #[serde(default = "fall")]
    pub fall: u32,
}

fn root() -> String {
    "/".into()
}
fn ok() -> u16 {
    200
}
fn interval() -> u64 {
    2_000
}
fn rise() -> u32 {
    2
}
fn fall() -> u32 {
    3
}

impl HealthCheckSpec {
    /// The probe's time limit: as given, else 1 s or the interval if shorter.
    pub fn timeout(&self) -> u64 {
        self.timeout_ms.unwrap_or_else(|| self.interval_ms.min(1_000))
    }
}

impl Kind for HealthCheck {
    type Spec = HealthCheckSpec;
    const NAME: &'static str = "health check";
    const PATH: &'static [&'static str] = &["loadbalancers", "pools", "healthchecks"];

    fn validate(spec: &HealthCheckSpec) -> Result<(), FieldError> {
        check_range("spec.interval_ms", spec.interval_ms, 100..=3_600_000)?;
        check_range("spec.timeout_ms", spec.timeout(), 10..=spec.interval_ms)?;
        check_range("spec.rise", spec.rise, 1..=10)?;
        check_range("spec.fall", spec.fall, 1..=10)?;
        check_range("spec.expected_status", spec.expected_status, 100..=599)?;
        if !spec.path.starts_with('/') || spec.path.len() > 1024 || spec.path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(FieldError::new("spec.path", "an absolute path of at most 1024 bytes, without spaces or control characters"));
        }
        Ok(())
    }
}
