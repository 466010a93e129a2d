//! Password hashing: argon2id with OWASP's recommended cost (19 MiB, 2 passes, 1 lane), as a
//! PHC string that carries its own parameters, so the cost can rise without breaking old hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::IamError;

/// The cost, as the benchmark states it.
pub const COST: &str = "argon2id m=19456 KiB, t=2, p=1";

fn hasher() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn validate(password: &str) -> Result<(), IamError> {
    if password.chars().count() < 12 {
        return Err(IamError::invalid("password", "must be at least 12 characters"));
    }
    if password.len() > 1024 {
        return Err(IamError::invalid("password", "must be at most 1024 bytes"));
    }
    Ok(())
}

pub fn hash(password: &str) -> Result<String, IamError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| IamError::Internal("no randomness for a salt".into()))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| IamError::Internal(format!("salt: {e}")))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| IamError::Internal(format!("hashing a password: {e}")))
}

pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| hasher().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_verify_and_differ() {
        let a = super::hash("correct horse battery").unwrap();
        let b = super::hash("correct horse battery").unwrap();
        assert_ne!(a, b, "salted");
        assert!(a.starts_with("$argon2id$"));
        assert!(super::verify("correct horse battery", &a));
        assert!(!super::verify("wrong horse battery", &a));
        assert!(!super::verify("x", "not a hash"));
        assert!(super::validate("short").is_err());
    }
}
