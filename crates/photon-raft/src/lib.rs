//! Generic Raft for PhotonCloud: openraft 0.9 over a durable RocksDB log and state machine,
//! a tonic transport on the peer port with mutual TLS, and a fault hook for tests.
//!
//! An application (chainfire's MVCC store, a flaredb region) implements [`App`]: deterministic
//! `apply`, `snapshot` and `restore` over its own column families. Many Raft groups can share
//! one process and one RocksDB: every key this crate writes is prefixed by the group id.
//!
//! Architecture invariant: this crate knows nothing of chainfire, flaredb or any key layout
//! but its own (`keys.rs`).

// openraft's storage traits require its (large) StorageError as the error type; boxing it in
// our helpers would only add conversions at every trait boundary.
#![allow(clippy::result_large_err)]

mod app;
mod error;
pub mod fault;
pub mod host;
mod keys;
mod log_store;
pub mod network;
mod state_machine;
mod storage;
mod types;
mod wal_sync;

pub use app::{App, BoxError};
pub use error::RaftError;
pub use keys::{decode, encode, CF_LOG, CF_META};
pub use log_store::LogStore;
pub use state_machine::StateMachine;
pub use storage::Storage;
pub use types::{Batch, NodeId, TypeConfig};

/// Re-exported so applications name openraft types through one version.
pub use openraft;
/// Re-exported so applications use the same RocksDB as the log.
pub use rocksdb;
