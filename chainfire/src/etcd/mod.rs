//! The etcd v3 gRPC services chainfire serves (etcd's own protos, `photon_api::etcd`).

pub mod convert;
mod kv;
mod lease;
mod watch;

pub use kv::KvService;
pub use lease::LeaseService;
pub use watch::WatchService;
