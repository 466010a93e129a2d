//! PhotonCloud's load generators: `etcd-bench` (the etcd v3 API with etcd's benchmark knobs),
//! `ycsb-bench` (YCSB-style workloads against FlareDB, etcd-compatible stores and raw RocksDB),
//! `iam-bench` (IAM's Authorize next to a no-op call) and `s3-bench` (S3 load, and the raw disk).
//! They share how a run is summarised.

pub mod stats;
pub mod ycsb;
pub mod zipf;
