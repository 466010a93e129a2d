//! Reading certificates, keys and trust roots from PEM files.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

/// A certificate chain and its private key: what a server (or a mutual-TLS client) presents.
#[derive(Debug)]
pub struct Identity {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self { cert_chain: self.cert_chain.clone(), key: self.key.clone_key() }
    }
}

fn pem_error(path: &Path, what: &'static str, detail: impl ToString) -> TlsError {
    TlsError::Pem { path: path.to_path_buf(), what, detail: detail.to_string() }
}

fn ensure_readable(path: &Path) -> Result<(), TlsError> {
    std::fs::metadata(path).map(|_| ()).map_err(|source| TlsError::Read { path: PathBuf::from(path), source })
}

/// All certificates in a PEM file, in order. An empty file is an error.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    ensure_readable(path)?;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, "certificate", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "certificate", "no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// A certificate chain and the private key (PKCS#8, PKCS#1 or SEC1) that goes with it.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let cert_chain = load_certs(cert)?;
    ensure_readable(key)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, "private key", e))?;
    Ok(Identity { cert_chain, key })
}

/// A trust store holding every certificate in a PEM file (a CA bundle).
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| pem_error(path, "CA certificate", e))?;
    }
    Ok(roots)
}

/// A certificate chain and its key from PEM text (a tenant's, sent through an API) as rustls
/// serves it; the error says which part is wrong.
pub fn certified_key(cert_pem: &str, key_pem: &str) -> Result<rustls::sign::CertifiedKey, String> {
    let chain = load_certs_pem(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("private key: {e}"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| format!("private key: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| format!("the private key does not match the certificate: {e}"))?;
    Ok(certified)
}

/// The certificates in PEM text; the error says what is wrong.
pub fn load_certs_pem(cert_pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    if chain.is_empty() {
        return Err("certificate: no CERTIFICATE block found".into());
    }
    Ok(chain)
}
