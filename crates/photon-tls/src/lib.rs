//! TLS for PhotonCloud: rustls server and client configs built from PEM files, mutual TLS for
//! peer links, and the development CA that lets a fresh node serve TLS with no certificates
//! configured. Everything uses the `ring` provider explicitly, never a process-global default.
//! Also the other use of a key file at rest: secrets sealed under a master key (`seal`).

mod configs;
mod dev_ca;
mod error;
mod pem;
pub mod seal;

pub use configs::{client_config, server_config, ALPN_H2, ALPN_HTTP11};
pub use dev_ca::{local_names, DevCa, IssuedCert, CA_CERT_FILE, CA_KEY_FILE};
pub use error::TlsError;
pub use pem::{certified_key, load_certs, load_certs_pem, load_identity, load_roots, Identity};

/// The rustls crypto provider every PhotonCloud config is built with.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
