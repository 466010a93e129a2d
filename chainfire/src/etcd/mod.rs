//! The etcd v3 gRPC services chainfire serves (etcd's own protos, `photon_api::etcd`).

pub mod convert;
mod kv;
mod watch;

pub use kv::KvService;
pub use watch::WatchService;
