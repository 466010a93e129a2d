//! FiberLB's resources, each a spec and its `Kind` (photon-resource's tenant resource shape):
//! a load balancer holds its listeners (each with its L7 rules) and its pools (each with its
//! backends and health checks); deleting one deletes what it holds.

pub mod backend;
pub mod healthcheck;
pub mod listener;
pub mod loadbalancer;
pub mod pool;
pub mod rule;

use photon_resource::{FieldError, Kind, Layout};

pub use backend::Backend;
pub use healthcheck::HealthCheck;
pub use listener::Listener;
pub use loadbalancer::LoadBalancer;
pub use pool::Pool;
pub use rule::Rule;

/// Where FiberLB's resources live in chainfire.
pub const ROOT: &str = "/photoncloud/fiberlb";

pub fn layout() -> Layout {
    Layout::new(ROOT, &[LoadBalancer::PATH, Listener::PATH, Rule::PATH, Pool::PATH, Backend::PATH, HealthCheck::PATH])
}

/// A pool named by another resource (same load balancer): a valid name.
pub(crate) fn check_pool_ref(field: &str, pool: &str) -> Result<(), FieldError> {
    photon_resource::check_name(field, pool)
}
