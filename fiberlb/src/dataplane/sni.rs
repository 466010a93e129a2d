//! TLS termination's certificate choice: a listener's certificates by the host names each
//! lists (exact, or `*.` for one level of subdomain), the first for clients without SNI or
//! with a name none lists. Built with the plan, so a rotated certificate serves the next
//! handshake.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use photon_tls::seal::SealKey;

use crate::model::listener::{host_matches, Certificate, SEALED};

#[derive(Debug)]
pub struct SniResolver {
    by_host: Vec<(String, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// `None` if no certificate parses (each that does not is logged and skipped).
    pub fn new(listener: &str, certificates: &[Certificate], keys: &SealKey) -> Option<Self> {
        let mut by_host = Vec::new();
        let mut default = None;
        for (i, cert) in certificates.iter().enumerate() {
            let key = match cert.private_key_pem.strip_prefix(SEALED) {
                Some(sealed) => match keys.open(sealed).map(String::from_utf8) {
                    Ok(Ok(pem)) => pem,
                    Ok(Err(_)) | Err(_) => {
                        tracing::warn!(%listener, certificate = i, "a private key does not unseal (another master key?); skipped");
                        continue;
                    }
                },
                None => cert.private_key_pem.clone(),
            };
            match photon_tls::certified_key(&cert.certificate_pem, &key) {
                Ok(key) => {
                    let key = Arc::new(key);
                    default.get_or_insert_with(|| key.clone());
                    by_host.extend(cert.hosts.iter().map(|h| (h.clone(), key.clone())));
                }
                Err(e) => tracing::warn!(%listener, certificate = i, error = %e, "a certificate does not load; skipped"),
            }
        }
        Some(Self { by_host, default: default? })
    }

    fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        // An exact name wins over a wildcard that also matches.
        let exact = self.by_host.iter().find(|(h, _)| *h == name);
        exact.or_else(|| self.by_host.iter().find(|(h, _)| h.starts_with("*.") && host_matches(h, &name))).map(|(_, key)| key)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(hello.server_name().and_then(|name| self.find(name)).unwrap_or(&self.default).clone())
    }
}

/// The server configuration of an HTTPS listener: its certificates by SNI, HTTP/2 and
/// HTTP/1.1 by ALPN.
pub fn server_config(listener: &str, certificates: &[Certificate], keys: &SealKey) -> Option<Arc<rustls::ServerConfig>> {
    let resolver = SniResolver::new(listener, certificates, keys)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(Arc::new(config))
}
