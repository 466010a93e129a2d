//! The etcd v3 gRPC services chainfire serves (etcd's own protos, `photon_api::etcd`).

pub mod convert;
mod kv;

pub use kv::KvService;
