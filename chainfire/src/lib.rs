//! Chainfire: PhotonCloud's replicated coordination store. It speaks the etcd v3 gRPC API on
//! its API port, keeps an MVCC key-value store in RocksDB, and replicates it with Raft
//! (photon-raft) over its peer port.
//!
//! Layers, top down: `server` (assembly on photon-runtime) → `etcd` (the gRPC services and the
//! proto conversions) → `node` (Raft, proposals, linearizable reads) → `mvcc` (the store,
//! applied as the Raft state machine). Architecture invariant: `mvcc` knows nothing of gRPC
//! or Raft networking; `etcd` is the only place generated types appear.

pub mod cluster_config;
pub mod config;
pub mod error;
pub mod etcd;
pub mod join;
pub mod leases;
pub mod membership;
pub mod mvcc;
pub mod node;
pub mod rest;
pub mod server;
