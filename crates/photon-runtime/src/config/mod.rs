//! One configuration story for every service: a serde struct with documented defaults, merged
//! from defaults < TOML file < environment < command-line flags in one function ([`load`]).
//!
//! The sections every service shares (`[server]`, `[log]`, `[tls]`) live here; a service's own
//! config struct lists them beside its own sections and implements [`ServiceConfig`].

mod help;
mod load;
mod schema;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use help::config_help;
pub use load::{load, load_with, render_toml};

/// What the runtime needs to know about a service before reading any configuration.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// Service name, e.g. `chainfire`; the binary is `<name>-server`.
    pub name: &'static str,
    /// Prefix of the environment variables that override config keys, e.g. `CHAINFIRE`.
    pub env_prefix: &'static str,
    /// Default API port (PLATFORM.md's table).
    pub default_port: u16,
    /// Version of the binary, usually `env!("CARGO_PKG_VERSION")`.
    pub version: &'static str,
}

impl ServiceSpec {
    /// The environment variable naming the config file, e.g. `CHAINFIRE_CONFIG`.
    pub fn config_env(&self) -> String {
        format!("{}_CONFIG", self.env_prefix)
    }
}

/// A service's whole configuration. Implementations are plain serde structs with
/// `#[serde(deny_unknown_fields)]` holding [`ServerSection`], [`LogSection`], [`TlsSection`]
/// and the service's own sections.
pub trait ServiceConfig: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The configuration with every default filled in; every key must appear in it.
    fn defaults(spec: &ServiceSpec) -> Self;
    /// The shared sections, for the runtime: `Sections { server: &self.server, log: &self.log, tls: &self.tls }`.
    fn sections(&self) -> Sections<'_>;
}

/// Borrowed views of the sections every service shares.
#[derive(Debug, Clone, Copy)]
pub struct Sections<'a> {
    pub server: &'a ServerSection,
    pub log: &'a LogSection,
    pub tls: &'a TlsSection,
}

/// `[server]`: where the API port listens and where state lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// The API port: gRPC, REST, `/health` and `/metrics` on one socket.
    pub listen: SocketAddr,
    /// Directory for all state; created if missing.
    pub data_dir: PathBuf,
    /// `development` creates a local CA when no certificates are configured; `production`
    /// refuses to start without certificates unless `tls.insecure` is set.
    pub mode: Mode,
    /// How long in-flight requests may run after SIGTERM before connections are closed.
    pub shutdown_timeout_secs: u64,
}

impl ServerSection {
    /// Defaults for a single node on loopback.
    pub fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], spec.default_port)),
            data_dir: PathBuf::from(format!("./data/{}", spec.name)),
            mode: Mode::Development,
            shutdown_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

/// `[log]`: what is logged and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// A `tracing` filter: a level (`info`) or directives (`info,photon_runtime=debug`).
    pub level: String,
    /// `auto` writes JSON under systemd (when `JOURNAL_STREAM` is set) and text otherwise.
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Auto }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

/// `[tls]`: certificates for the API port.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM certificate chain for the API port. With `key`, replaces the development CA.
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// Where the development CA lives; defaults to `<data_dir>/dev-ca`. `photonctl up` points
    /// every service at one shared directory.
    pub dev_ca_dir: Option<PathBuf>,
    /// Serve plaintext HTTP/2 and HTTP/1.1 instead of TLS. Never for production traffic.
    pub insecure: bool,
}
