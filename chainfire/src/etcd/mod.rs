//! The etcd v3 gRPC services chainfire serves (etcd's own protos, `photon_api::etcd`).

mod cluster;
pub mod convert;
mod kv;
mod lease;
mod maintenance;
mod watch;

pub use cluster::ClusterService;
pub use kv::KvService;
pub use lease::LeaseService;
pub use maintenance::MaintenanceService;
pub use watch::WatchService;
