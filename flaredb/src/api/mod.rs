//! FlareDB's gRPC services (`photon.flaredb.v1`).

pub mod kv;
pub mod regions;
