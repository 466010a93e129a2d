//! The one error type of this crate: every failure names the file or setting involved.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no usable PEM {what}: {detail}")]
    Pem { path: PathBuf, what: &'static str, detail: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid trust roots: {0}")]
    Verifier(String),
    #[error("timed out waiting for another process to finish creating the CA in {0}")]
    CaCreationTimeout(PathBuf),
}
