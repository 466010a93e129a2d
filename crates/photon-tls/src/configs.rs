//! rustls server and client configurations: one-way TLS for APIs, mutual TLS for peer links.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::{provider, Identity, TlsError};

/// ALPN protocol id for HTTP/2 (gRPC and REST).
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id for HTTP/1.1 (REST, curl, health probes).
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// A server config offering h2 and http/1.1 on one port. With `client_roots`, clients must
/// present a certificate signed by one of them (mutual TLS, for peer links).
pub fn server_config(identity: Identity, client_roots: Option<RootCertStore>) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_roots {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(identity.cert_chain, identity.key)?;
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Ok(config)
}

/// A client config trusting `roots`; with `identity`, it presents that certificate (mutual TLS).
/// `alpn` lists the protocols offered, most preferred first.
pub fn client_config(
    roots: RootCertStore,
    identity: Option<Identity>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder.with_client_auth_cert(id.cert_chain, id.key)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}
