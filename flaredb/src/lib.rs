//! FlareDB: PhotonCloud's range-sharded key-value store. The key space is split into regions,
//! each replicated by its own Raft group (photon-raft, many groups per process over one
//! RocksDB and one peer port); the region map lives in chainfire. See docs/flaredb.md.

pub mod api;
pub mod background;
pub mod chainfire;
pub mod cluster_config;
pub mod config;
pub mod error;
pub mod keys;
pub mod ops;
pub mod placement;
pub mod region;
pub mod replicas;
pub mod rest;
pub mod server;
pub mod split;
pub mod store;
