//! The IAM server key and what it protects: access-key secrets and signing keys are sealed
//! (`photon_tls::seal`) under a key kept in a file only root reads (`keys.master_key_file`).
//!
//! Why sealed and not hashed: SigV4 verification needs the secret itself (the verifier
//! recomputes the signature), so a one-way hash cannot work.

use std::path::Path;

pub use photon_tls::seal::{hex, write_private};
use photon_tls::seal::SealKey;

use crate::error::IamError;

pub struct ServerKey(SealKey);

impl ServerKey {
    /// Reads the key from `path`, or creates it there (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        SealKey::load_or_create(path, "the IAM server key").map(Self)
    }

    /// `base64(nonce ‖ ciphertext ‖ tag)`.
    pub fn seal(&self, plain: &[u8]) -> Result<String, IamError> {
        self.0.seal(plain).map_err(IamError::Internal)
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, IamError> {
        self.0.open(sealed).map_err(|e| IamError::Internal(format!("{e} (keys.master_key_file)")))
    }

    /// `n` random bytes.
    pub fn random(&self, n: usize) -> Result<Vec<u8>, IamError> {
        self.0.random(n).map_err(IamError::Internal)
    }
}
