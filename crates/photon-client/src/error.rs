//! The one error type of the client crate.

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(transparent)]
    Tls(#[from] photon_tls::TlsError),
    #[error("cannot read {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("TLS handshake with {addr} failed: {source}")]
    Handshake { addr: String, source: std::io::Error },
    #[error("{0} timed out")]
    Timeout(String),
    #[error("HTTP exchange with {addr} failed: {reason}")]
    Http { addr: String, reason: String },
    #[error("gRPC connection failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
}
