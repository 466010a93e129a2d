//! A backend: one address and port of a pool, its weight, and whether it takes traffic.

use std::net::IpAddr;

use photon_resource::{FieldError, Kind};
use serde::{Deserialize, Serialize};

use photon_resource::check_range;

pub struct Backend;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum AdminState {
    /// Takes new connections and requests.
    #[default]
    Enabled,
    /// No new connections or requests; open ones finish, up to the drain deadline.
    Drain,
    /// Nothing at all; open connections are closed.
    Disabled,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    pub address: IpAddr,
    pub port: u16,
    /// Relative share of traffic (weighted algorithms), 1 to 1000.
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub admin_state: AdminState,
    /// How long a draining backend's open connections may take to finish.
    #[serde(default = "drain_deadline")]
    pub drain_deadline_ms: u64,
}

fn one() -> u32 {
    1
}

fn drain_deadline() -> u64 {
    30_000
}

impl Kind for Backend {
    type Spec = BackendSpec;
    const NAME: &'static str = "backend";
    const PATH: &'static [&'static str] = &["loadbalancers", "pools", "backends"];

    fn validate(spec: &BackendSpec) -> Result<(), FieldError> {
        check_range("spec.port", spec.port, 1..=65535)?;
        check_range("spec.weight", spec.weight, 1..=1000)?;
        check_range("spec.drain_deadline_ms", spec.drain_deadline_ms, 0..=3_600_000)?;
        if spec.address.is_unspecified() || spec.address.is_multicast() {
            return Err(FieldError::new("spec.address", format!("{} cannot be a backend's address", spec.address)));
        }
        Ok(())
    }
}
