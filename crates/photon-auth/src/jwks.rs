//! IAM's signing keys, fetched from its JWKS endpoint and kept, so tokens verify locally (and
//! keep verifying while IAM is unreachable). An unknown key id triggers a refetch (at most
//! once per `REFETCH_EVERY`), which is how a rotated key is picked up.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::claims::{Claims, AUDIENCE};
use crate::error::AuthError;
use crate::verified::{Cached, VerifiedCache};

const REFETCH_EVERY: Duration = Duration::from_secs(5);
const MAX_TOKEN_BYTES: usize = 8192;

pub struct Jwks {
    url: String,
    ca: Option<PathBuf>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    fetched: RwLock<Option<Instant>>,
    verified: VerifiedCache,
}

impl Jwks {
    /// Keys from `<iam>/.well-known/jwks.json`, fetched on first use.
    pub fn new(iam_url: &str, ca: Option<PathBuf>) -> Self {
        Self {
            url: format!("{}/.well-known/jwks.json", iam_url.trim_end_matches('/')),
            ca,
            keys: RwLock::default(),
            fetched: RwLock::default(),
            verified: VerifiedCache::default(),
        }
    }

    async fn refetch(&self) -> Result<(), String> {
        {
            let mut fetched = self.fetched.write().unwrap_or_else(|p| p.into_inner());
            if fetched.is_some_and(|t| t.elapsed() < REFETCH_EVERY) {
                return Ok(());
            }
            *fetched = Some(Instant::now());
        }
        let answer = photon_client::get(&self.url, self.ca.as_deref(), Duration::from_secs(3))
            .await
            .map_err(|e| format!("fetching {}: {e}", self.url))?;
        if answer.status != 200 {
            return Err(format!("{} answered HTTP {}", self.url, answer.status));
        }
        let set: JwkSet =
            serde_json::from_slice(&answer.body).map_err(|e| format!("{} is not a JWKS: {e}", self.url))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) else { continue };
            keys.insert(kid, key);
        }
        tracing::debug!(keys = keys.len(), url = %self.url, "fetched IAM's signing keys");
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(())
    }

    /// Fetches the keys now, whenever they were last fetched.
    pub async fn prefetch(&self) -> Result<(), String> {
        *self.fetched.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.refetch().await
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).get(kid).cloned()
    }

    /// Verifies signature, audience and expiry of an access token (a token verified before
    /// costs a lookup; its expiry is still checked). An unknown key id refetches the JWKS.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        match self.verify_offline(token) {
            Err(Offline::UnknownKey(kid)) => {
                if let Err(e) = self.refetch().await {
                    tracing::warn!(error = %e, "could not fetch IAM's signing keys");
                }
                self.verify_offline(token).map_err(|e| match e {
                    Offline::UnknownKey(_) => AuthError::Unauthenticated(format!("token signed by unknown key {kid}")),
                    Offline::Rejected(e) => e,
                })
            }
            Err(Offline::Rejected(e)) => Err(e),
            Ok(claims) => Ok(claims),
        }
    }

    /// Like [`Jwks::verify`] with the keys already fetched, without any I/O (for synchronous
    /// callers such as tonic interceptors).
    pub fn verify_offline(&self, token: &str) -> Result<Claims, Offline> {
        match self.verified.get(token) {
            Cached::Valid(claims) => return Ok(claims),
            Cached::Expired => return Err(Offline::Rejected(AuthError::Unauthenticated("token has expired".into()))),
            Cached::Unknown => {}
        }
        let claims = self.verify_signed(token)?;
        self.verified.insert(token, &claims);
        Ok(claims)
    }

    fn verify_signed(&self, token: &str) -> Result<Claims, Offline> {
        let bad = |why: String| Offline::Rejected(AuthError::Unauthenticated(why));
        if token.len() > MAX_TOKEN_BYTES {
            return Err(bad(format!("token is over {MAX_TOKEN_BYTES} bytes")));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| bad(format!("malformed token: {e}")))?;
        if header.alg != Algorithm::EdDSA {
            return Err(bad(format!("token algorithm {:?} is not EdDSA", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| bad("token names no key (kid)".into()))?;
        let key = self.key(&kid).ok_or(Offline::UnknownKey(kid))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        let claims =
            jsonwebtoken::decode::<Claims>(token, &key, &validation).map(|d| d.claims).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => bad("token has expired".into()),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => bad("token signature is invalid".into()),
                _ => bad(format!("token rejected: {e}")),
            })?;
        if claims.typ != crate::claims::TokenType::Access {
            return Err(bad("a refresh token cannot authorize calls".into()));
        }
        Ok(claims)
    }
}

/// Why an offline verification failed.
#[derive(Debug)]
pub enum Offline {
    Rejected(AuthError),
    /// Signed by a key not fetched (yet): [`Jwks::verify`] refetches.
    UnknownKey(String),
}
