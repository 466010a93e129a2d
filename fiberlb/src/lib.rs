//! FiberLB: tenants' load balancers. The control plane (`api`) keeps load balancers, listeners,
//! pools, backends, health checks and rules (`model`) in chainfire; every fiberlb node follows
//! them (a `photon_resource::Mirror`) and serves them.

pub mod api;
pub mod balance;
pub mod config;
pub mod dataplane;
pub mod model;
pub mod server;
