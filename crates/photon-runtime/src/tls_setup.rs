//! Deciding how the API port speaks: configured certificates, the development CA, or (only when
//! asked) plaintext. Production refuses to guess.

use std::path::PathBuf;
use std::sync::Arc;

use photon_tls::{load_identity, load_roots, local_names, server_config, DevCa};

use crate::config::{Mode, ServerSection, TlsSection};
use crate::RuntimeError;

/// The outcome: a rustls config (None for plaintext), the CA clients and peers should trust,
/// and the certificate and key the port serves (which peers reuse for mutual TLS).
#[derive(Clone)]
pub struct TlsSetup {
    pub config: Option<Arc<rustls::ServerConfig>>,
    pub trust: Option<PathBuf>,
    pub identity: Option<(PathBuf, PathBuf)>,
}

pub fn prepare(service: &str, server: &ServerSection, tls: &TlsSection) -> Result<TlsSetup, RuntimeError> {
    let client_roots = tls.client_ca.as_deref().map(load_roots).transpose()?;
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let config = server_config(load_identity(cert, key)?, client_roots)?;
            tracing::info!(cert = %cert.display(), mutual = tls.client_ca.is_some(), "serving TLS with configured certificate");
            return Ok(TlsSetup {
                config: Some(Arc::new(config)),
                trust: tls.client_ca.clone(),
                identity: Some((cert.clone(), key.clone())),
            });
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(RuntimeError::Config("tls.cert and tls.key must be set together".into()));
        }
        (None, None) => {}
    }
    if tls.insecure {
        tracing::warn!(
            "tls.insecure is set: the API port serves plaintext; use it only on loopback or a trusted network"
        );
        return Ok(TlsSetup { config: None, trust: None, identity: None });
    }
    if server.mode == Mode::Production {
        return Err(RuntimeError::Config(
            "production mode needs tls.cert and tls.key (or tls.insecure = true to serve plaintext on purpose)".into(),
        ));
    }
    let ca_dir = tls.dev_ca_dir.clone().unwrap_or_else(|| server.data_dir.join("dev-ca"));
    let (ca, created) = DevCa::load_or_create(&ca_dir)?;
    let mut names = local_names();
    let ip = server.listen.ip();
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    let issued = ca.issue_or_reuse(&server.data_dir.join("tls"), service, &names)?;
    tracing::info!(
        ca = %ca.cert_path().display(),
        ca_created = created,
        cert = %issued.cert_path.display(),
        cert_reused = issued.reused,
        names = %names.join(","),
        "no certificate configured: using the development CA (clients trust the ca path)"
    );
    let identity = load_identity(&issued.cert_path, &issued.key_path)?;
    let config = server_config(identity, client_roots)?;
    Ok(TlsSetup {
        config: Some(Arc::new(config)),
        trust: Some(ca.cert_path()),
        identity: Some((issued.cert_path, issued.key_path)),
    })
}
