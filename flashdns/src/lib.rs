//! FlashDNS: authoritative DNS for tenants and the platform's services. Zones live in chainfire
//! (`store`); every node answers from an in-memory copy a watch keeps current (`mirror`), with
//! the DNS engine in `dns` and the sockets in `transport`; `api` is the management REST API;
//! `transfer` serves zone transfers to secondaries and notifies them.

pub mod api;
pub mod config;
pub mod dns;
pub mod dnssec;
pub mod grpc;
pub mod import;
pub mod metrics;
pub mod mirror;
pub mod model;
pub mod server;
pub mod reverse;
pub mod store;
pub mod transfer;
pub mod transport;
pub mod zonefile;
