//! The runtime's one error type. Binaries turn it into an exit code and a log line.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration could not be loaded; the message names the key and its origin.
    #[error("configuration error: {0}")]
    Config(String),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] photon_tls::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot start: {0}")]
    Startup(String),
    #[error("the service failed to start: {0}")]
    Service(Box<dyn std::error::Error + Send + Sync>),
}
