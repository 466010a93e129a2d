//! Tokens already verified: a token presented again costs a hash lookup instead of a
//! signature check. Entries carry the token's expiry, which is checked on every use; revocation
//! is checked by the callers as before. Bounded: when full, it starts over.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::claims::Claims;

const CAPACITY: usize = 65_536;

#[derive(Default)]
pub struct VerifiedCache {
    tokens: RwLock<HashMap<String, Claims>>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// What a cached token is now.
pub enum Cached {
    Valid(Claims),
    Expired,
    Unknown,
}

impl VerifiedCache {
    pub fn get(&self, token: &str) -> Cached {
        match self.tokens.read().unwrap_or_else(|p| p.into_inner()).get(token) {
            // The same rule as the verifier's (no leeway): expired once `exp` has passed.
            Some(claims) if claims.exp < now() => Cached::Expired,
            Some(claims) => Cached::Valid(claims.clone()),
            None => Cached::Unknown,
        }
    }

    pub fn insert(&self, token: &str, claims: &Claims) {
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= CAPACITY {
            tokens.clear();
        }
        tokens.insert(token.to_string(), claims.clone());
    }
}
