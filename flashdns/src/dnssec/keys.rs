//! A zone's signing keys: generated here, stored in the zone's record in chainfire with the
//! private half sealed (`photon_tls::seal`) under the DNSSEC master key every flashdns node of
//! a cluster shares, and opened into hickory signers when the zone is served. Every key is a
//! combined signing key (flags 257): it signs the DNSKEY RRset and everything else, so a
//! rollover is one key replacing another (both sign while the parent's DS moves).

use std::sync::Arc;

use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::{DNSKEY, DS};
use hickory_proto::dnssec::{Algorithm, DigestType, SigningKey};
use hickory_proto::rr::Name;
use photon_tls::seal::SealKey;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Serialize};

/// Flags of a combined signing key: zone key and secure entry point.
const CSK_FLAGS: u16 = 257;

/// A key as the zone's record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub tag: u16,
    /// `ECDSAP256SHA256` or `ED25519`.
    pub algorithm: String,
    /// The PKCS#8 private key, sealed.
    pub sealed: String,
    pub created_ms: u64,
}

/// The algorithms a zone may be signed with, by the names the API takes.
pub fn algorithm(name: &str) -> Result<Algorithm, String> {
    match name.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
        "ECDSAP256SHA256" | "ECDSAP256" | "13" => Ok(Algorithm::ECDSAP256SHA256),
        "ED25519" | "15" => Ok(Algorithm::ED25519),
        _ => Err(format!("{name:?} is not a signing algorithm here (ECDSAP256SHA256 or ED25519)")),
    }
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    if algorithm == Algorithm::ED25519 {
        "ED25519"
    } else {
        "ECDSAP256SHA256"
    }
}

/// One usable key: its DNSKEY and its signer.
#[derive(Clone)]
pub struct ZoneKey {
    pub dnskey: DNSKEY,
    pub algorithm: Algorithm,
    pub tag: u16,
    pub signer: Arc<dyn SigningKey>,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneKey").field("tag", &self.tag).finish()
    }
}

impl ZoneKey {
    /// The DS record the parent zone publishes for this key (SHA-256).
    pub fn ds(&self, zone: &Name) -> Result<DS, String> {
        let digest = self.dnskey.to_digest(zone, DigestType::SHA256).map_err(|e| e.to_string())?;
        Ok(DS::new(self.tag, self.algorithm, DigestType::SHA256, digest.as_ref().to_vec()))
    }
}

/// Opens and makes keys with the DNSSEC master key.
pub struct Keyring {
    seal: SealKey,
}

impl Keyring {
    pub fn new(seal: SealKey) -> Self {
        Self { seal }
    }

    /// A new key of `algorithm`, sealed for storing.
    pub fn generate(&self, algorithm: Algorithm) -> Result<StoredKey, String> {
        let pkcs8 = if algorithm == Algorithm::ED25519 {
            Ed25519SigningKey::generate_pkcs8()
        } else {
            EcdsaSigningKey::generate_pkcs8(algorithm)
        }
        .map_err(|e| format!("cannot generate a {} key: {e}", algorithm_name(algorithm)))?;
        let stored = StoredKey {
            tag: 0,
            algorithm: algorithm_name(algorithm).to_string(),
            sealed: self.seal.seal(pkcs8.secret_pkcs8_der())?,
            created_ms: photon_resource::meta::now_ms(),
        };
        let tag = self.open(&stored)?.tag;
        Ok(StoredKey { tag, ..stored })
    }

    /// The usable key a stored one holds.
    pub fn open(&self, stored: &StoredKey) -> Result<ZoneKey, String> {
        let algorithm = algorithm(&stored.algorithm)?;
        let der = self.seal.open(&stored.sealed)?;
        let pkcs8 = PrivatePkcs8KeyDer::from(der);
        let signer: Arc<dyn SigningKey> = if algorithm == Algorithm::ED25519 {
            Arc::new(Ed25519SigningKey::from_pkcs8(&pkcs8).map_err(|e| format!("key {}: {e}", stored.tag))?)
        } else {
            Arc::new(EcdsaSigningKey::from_pkcs8(&pkcs8, algorithm).map_err(|e| format!("key {}: {e}", stored.tag))?)
        };
        let public = signer.to_public_key().map_err(|e| format!("key {}: {e}", stored.tag))?;
        let dnskey = DNSKEY::with_flags(CSK_FLAGS, public);
        let tag = dnskey.calculate_key_tag().map_err(|e| format!("key {}: {e}", stored.tag))?;
        Ok(ZoneKey { dnskey, algorithm, tag, signer })
    }
}
