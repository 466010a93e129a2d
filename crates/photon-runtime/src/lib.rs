//! The server runtime every PhotonCloud service is built on. A service brings its gRPC
//! services, HTTP routes, health check and config sections; the runtime brings the rest:
//!
//! - configuration from defaults, a TOML file, the environment and flags ([`config`], [`cli`]);
//! - logging, text on a terminal and JSON under systemd ([`telemetry`]);
//! - one TLS port serving gRPC and HTTP together, with the development CA when no certificate
//!   is configured;
//! - `GET /health`, `GET /metrics` and the `photon.runtime.v1.Runtime` gRPC service;
//! - systemd notify (READY, STOPPING, WATCHDOG) and a graceful, bounded drain on SIGTERM.
//!
//! Architecture invariant: the runtime knows nothing of any particular service.

mod allocator;
mod api;
pub mod cli;
pub mod cluster_config;
pub mod config;
mod error;
mod fallback;
mod health;
pub mod histogram;
mod metrics;
pub mod notify;
mod observe;
pub mod rest;
mod run;
mod runtime_api;
mod serve;
mod signals;
mod streams;
pub mod telemetry;
pub mod time;
mod tls_setup;

pub use api::Api;
pub use cli::CommonArgs;
pub use config::{LogSection, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection};
pub use error::RuntimeError;
pub use health::{HealthCheck, HealthReport, HealthStatus};
pub use run::{run, serve, BoxError, Context};
pub use streams::StreamProtocol;
/// Serves a router on a further port of the service (LightningStor's S3 port, for example):
/// the same TLS (or plaintext when `None`), connection handling and bounded drain on shutdown
/// as the API port. Spawn it on the context's task tracker.
pub use serve::serve_connections as serve_port;
pub use tls_setup::{prepare as prepare_tls, TlsSetup};

/// Re-exported for services' extra flag overrides (`(key path, Value)` pairs).
pub use figment::value::Value as ConfigValue;
/// Re-exported so services register metrics against the same version the runtime encodes.
pub use prometheus_client;

/// This machine's host name (from the kernel, so it works where `/proc/sys` is hidden, as under
/// systemd's `ProcSubset=pid`); empty if it cannot be had.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).trim().to_string()
}
