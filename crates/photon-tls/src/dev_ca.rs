//! The development CA: with no certificates configured, a service creates (or reuses) a CA in a
//! directory shared by every service of the node, and a server certificate signed by it.
//!
//! The CA's subject is derived from its key, so loading `ca.key` is enough to sign again; no
//! certificate parser is needed. Creation is atomic across processes: the key is published with
//! a hard link, which fails if another process won the race, and the loser adopts the winner's CA.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::{load_certs, provider, TlsError};

/// File name of the CA certificate inside the CA directory (what clients trust).
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA private key inside the CA directory (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key";

/// How long a process waits for a concurrent creator to finish writing the CA.
const CREATION_WAIT: Duration = Duration::from_secs(10);

/// A CA that can sign server and peer certificates.
pub struct DevCa {
    dir: PathBuf,
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// Where an issued certificate and its key were written.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// True when an existing, still valid certificate was kept instead of issuing a new one.
    pub reused: bool,
}

/// The names a development server certificate covers: localhost, loopback and the host name.
pub fn local_names() -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let hostname = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let hostname = hostname.trim();
    if !hostname.is_empty() && !names.iter().any(|n| n == hostname) {
        names.push(hostname.to_string());
    }
    names
}

/// A temp-file suffix unique across processes and threads.
fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

fn ca_params(key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    let id: String = params.key_identifier(key).iter().take(6).map(|b| format!("{b:02x}")).collect();
    params.distinguished_name.push(DnType::OrganizationName, "PhotonCloud");
    params.distinguished_name.push(DnType::CommonName, format!("PhotonCloud development CA {id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

fn read(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), TlsError> {
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    };
    write().map_err(|source| TlsError::Write { path: path.to_path_buf(), source })
}

fn create_dir(dir: &Path) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(|source| TlsError::Write { path: dir.to_path_buf(), source })
}

impl DevCa {
    /// Loads the CA in `dir`, creating it first if there is none. Returns whether it was created.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), TlsError> {
        if dir.join(CA_KEY_FILE).exists() {
            Self::wait_for_cert(dir)?;
            return Ok((Self::load(dir)?, false));
        }
        create_dir(dir)?;
        let key = KeyPair::generate()?;
        let cert = ca_params(&key).self_signed(&key)?;
        let unique = unique_suffix();
        let tmp_key = dir.join(format!(".{CA_KEY_FILE}.{unique}"));
        let tmp_cert = dir.join(format!(".{CA_CERT_FILE}.{unique}"));
        write_file(&tmp_key, &key.serialize_pem(), 0o600)?;
        write_file(&tmp_cert, &cert.pem(), 0o644)?;
        let published = fs::hard_link(&tmp_key, dir.join(CA_KEY_FILE));
        let _ = fs::remove_file(&tmp_key);
        match published {
            Ok(()) => {
                fs::rename(&tmp_cert, dir.join(CA_CERT_FILE))
                    .map_err(|source| TlsError::Write { path: dir.join(CA_CERT_FILE), source })?;
                Ok((Self::load(dir)?, true))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&tmp_cert);
                Self::wait_for_cert(dir)?;
                Ok((Self::load(dir)?, false))
            }
            Err(source) => Err(TlsError::Write { path: dir.join(CA_KEY_FILE), source }),
        }
    }

    fn wait_for_cert(dir: &Path) -> Result<(), TlsError> {
        let deadline = Instant::now() + CREATION_WAIT;
        while !dir.join(CA_CERT_FILE).exists() {
            if Instant::now() > deadline {
                return Err(TlsError::CaCreationTimeout(dir.to_path_buf()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Loads an existing CA from `dir` (`ca.crt` and `ca.key`).
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let key_path = dir.join(CA_KEY_FILE);
        let key = KeyPair::from_pem(&read(&key_path)?).map_err(|e| TlsError::Pem {
            path: key_path.clone(),
            what: "private key",
            detail: e.to_string(),
        })?;
        let cert = load_certs(&dir.join(CA_CERT_FILE))?.remove(0);
        let issuer = Issuer::new(ca_params(&key), key);
        Ok(Self { dir: dir.to_path_buf(), cert, issuer })
    }

    /// Path of the CA certificate, for clients to trust.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// A trust store holding just this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        // The certificate was produced by rcgen or read back from our own file; adding it can
        // only fail on a corrupt file, which `load` would have rejected already.
        let _ = roots.add(self.cert.clone());
        roots
    }

    /// Issues a new certificate for `names` (DNS names or IP addresses), usable both as a server
    /// certificate and as a mutual-TLS client certificate, into `out_dir/<name>.{crt,key}`.
    pub fn issue(&self, out_dir: &Path, name: &str, names: &[String]) -> Result<IssuedCert, TlsError> {
        create_dir(out_dir)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params.distinguished_name.push(DnType::OrganizationName, "PhotonCloud");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        let (cert_path, key_path) = Self::paths(out_dir, name);
        write_file(&key_path, &key.serialize_pem(), 0o600)?;
        write_file(&cert_path, &cert.pem(), 0o644)?;
        Ok(IssuedCert { cert_path, key_path, reused: false })
    }

    /// Keeps `out_dir/<name>.crt` if it is signed by this CA, unexpired and valid for every one
    /// of `names`; otherwise issues a new one. This is how a restart reuses its certificate.
    pub fn issue_or_reuse(&self, out_dir: &Path, name: &str, names: &[String]) -> Result<IssuedCert, TlsError> {
        let (cert_path, key_path) = Self::paths(out_dir, name);
        if key_path.exists() && self.covers(&cert_path, names) {
            return Ok(IssuedCert { cert_path, key_path, reused: true });
        }
        self.issue(out_dir, name, names)
    }

    fn paths(out_dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        (out_dir.join(format!("{name}.crt")), out_dir.join(format!("{name}.key")))
    }

    fn covers(&self, cert_path: &Path, names: &[String]) -> bool {
        let Ok(chain) = load_certs(cert_path) else {
            return false;
        };
        let Ok(verifier) = WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots()), provider()).build()
        else {
            return false;
        };
        names.iter().all(|name| {
            let Ok(server_name) = ServerName::try_from(name.as_str()) else {
                return false;
            };
            verifier.verify_server_cert(&chain[0], &chain[1..], &server_name, &[], UnixTime::now()).is_ok()
        })
    }
}
