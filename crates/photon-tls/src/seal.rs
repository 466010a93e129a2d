//! Secrets sealed at rest with AES-256-GCM under a 32-byte key kept in a file only its owner
//! reads: IAM's access-key secrets and token signing keys, FlashDNS's DNSSEC private keys.
//! Whoever holds both the database and the key file can read the secrets; either alone reveals
//! nothing.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

pub struct SealKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl SealKey {
    /// Reads the key from `path`, or creates it there (mode 0600) when the file does not exist;
    /// `what` names the key in messages ("the IAM server key").
    pub fn load_or_create(path: &Path, what: &str) -> Result<Self, String> {
        let rng = SystemRandom::new();
        let bytes = match std::fs::read_to_string(path) {
            Ok(text) => decode_hex(text.trim())
                .filter(|b| b.len() == 32)
                .ok_or_else(|| format!("{}: not 64 hex digits (a 32-byte key)", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rng.fill(&mut key).map_err(|_| format!("no randomness for {what}"))?;
                write_private(path, &hex(&key)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                tracing::info!(path = %path.display(), "created {what} (keep it: what is sealed with it needs it)");
                key.to_vec()
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| format!("invalid {what}"))?;
        Ok(Self { key: LessSafeKey::new(unbound), rng })
    }

    /// `base64(nonce ‖ ciphertext ‖ tag)`.
    pub fn seal(&self, plain: &[u8]) -> Result<String, String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| "no randomness".to_string())?;
        let mut buffer = plain.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buffer)
            .map_err(|_| "sealing failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buffer);
        Ok(STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, String> {
        let bytes = STANDARD.decode(sealed).map_err(|_| "a sealed secret is not base64".to_string())?;
        if bytes.len() < NONCE_LEN {
            return Err("a sealed secret is truncated".into());
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_string())?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut body)
            .map_err(|_| "a sealed secret does not open with this key (was the key file replaced?)".to_string())?;
        Ok(plain.to_vec())
    }

    /// `n` random bytes.
    pub fn random(&self, n: usize) -> Result<Vec<u8>, String> {
        let mut out = vec![0u8; n];
        self.rng.fill(&mut out).map_err(|_| "no randomness".to_string())?;
        Ok(out)
    }
}

/// Writes `text` to a new file only its owner can read, atomically.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = SealKey::load_or_create(&path, "a test key").unwrap();
        let sealed = key.seal(b"wJalrXUtnFEMI").unwrap();
        assert!(!sealed.contains("wJalr"));
        assert_eq!(key.open(&sealed).unwrap(), b"wJalrXUtnFEMI");
        let again = SealKey::load_or_create(&path, "a test key").unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"wJalrXUtnFEMI", "the key survives a restart");
        let other = SealKey::load_or_create(&dir.path().join("other.key"), "a test key").unwrap();
        assert!(other.open(&sealed).is_err());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
