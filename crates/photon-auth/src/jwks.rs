//! IAM's signing keys, fetched from its JWKS endpoint and kept, so tokens verify locally (and
//! keep verifying while IAM is unreachable). An unknown key id triggers a refetch (at most
//! once per `REFETCH_EVERY`, the caller waiting out the rest of that window rather than failing),
//! which is how a rotated key, or one another IAM node created a moment ago, is picked up.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::claims::{Claims, AUDIENCE};
use crate::error::AuthError;
use crate::verified::{Cached, VerifiedCache};

const REFETCH_EVERY: Duration = Duration::from_secs(1);
/// Fetches one unknown key id may wait for: IAM nodes reload keys from flaredb every second, so
/// a key created on another node just before the token was issued shows in the second fetch.
const FETCHES_PER_UNKNOWN_KEY: usize = 2;
const MAX_TOKEN_BYTES: usize = 8192;

pub struct Jwks {
    url: String,
    ca: Option<PathBuf>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    fetched: RwLock<Option<Instant>>,
    /// One fetch at a time: callers that waited behind it find the key already there.
    fetching: tokio::sync::Mutex<()>,
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
            fetching: tokio::sync::Mutex::new(()),
            verified: VerifiedCache::default(),
        }
    }

    /// Fetches the key set unless a fetch started at or after `not_before` (when given) or
    /// within the last `REFETCH_EVERY`; a fetch still owed after `not_before` waits out the rest
    /// of that window rather than skipping, so IAM sees at most one fetch a window however many
    /// callers wait.
    async fn refetch(&self, not_before: Option<Instant>) -> Result<(), String> {
        let last = *self.fetched.read().unwrap_or_else(|p| p.into_inner());
        match (last, not_before) {
            (Some(last), Some(after)) if last >= after => return Ok(()),
            (Some(last), Some(after)) => {
                tokio::time::sleep_until(after.max(last + REFETCH_EVERY).into()).await;
            }
            (Some(last), None) if last.elapsed() < REFETCH_EVERY => return Ok(()),
            _ => {}
        }
        *self.fetched.write().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
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
        let _one = self.fetching.lock().await;
        *self.fetched.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.refetch(None).await
    }

    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).get(kid).cloned()
    }

    /// Verifies signature, audience and expiry of an access token (a token verified before
    /// costs a lookup; its expiry is still checked). An unknown key id refetches the JWKS.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        match self.verify_offline(token) {
            Err(Offline::UnknownKey(kid)) => {
                let arrived = Instant::now();
                for n in 0..FETCHES_PER_UNKNOWN_KEY {
                    let _one = self.fetching.lock().await;
                    if self.key(&kid).is_some() {
                        break;
                    }
                    if let Err(e) = self.refetch(Some(arrived + REFETCH_EVERY * n as u32)).await {
                        tracing::warn!(error = %e, "could not fetch IAM's signing keys");
                    }
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
    /// Signed by a key not fetched (yet): [`Jwks::verify`] refetches, waiting up to two windows.
    UnknownKey(String),
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;
    use crate::claims::TokenType;

    struct Key {
        kid: String,
        pkcs8: Vec<u8>,
        x: String,
    }

    fn key(kid: &str) -> Key {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
        Key { kid: kid.into(), x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()), pkcs8: pkcs8.as_ref().to_vec() }
    }

    fn token(key: &Key) -> String {
        let claims = Claims {
            iss: "test".into(),
            sub: "user:alice".into(),
            aud: AUDIENCE.into(),
            iat: 0,
            exp: i64::MAX / 2,
            jti: format!("jti-{}", key.kid),
            typ: TokenType::Access,
            org: String::new(),
        };
        let header = Header { alg: Algorithm::EdDSA, kid: Some(key.kid.clone()), ..Default::default() };
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&key.pkcs8)).expect("sign")
    }

    /// A JWKS endpoint publishing `published`, counting its fetches.
    async fn serve(published: Arc<Mutex<Vec<serde_json::Value>>>, fetches: Arc<Mutex<usize>>) -> String {
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || async move {
                *fetches.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                axum::Json(serde_json::json!({ "keys": published.lock().unwrap_or_else(|p| p.into_inner()).clone() }))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn jwk(key: &Key) -> serde_json::Value {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": key.kid, "x": key.x})
    }

    #[tokio::test]
    async fn a_key_published_just_after_a_fetch_is_waited_for_not_refused() {
        let (first, second) = (key("first"), key("second"));
        let published = Arc::new(Mutex::new(vec![jwk(&first)]));
        let fetches = Arc::new(Mutex::new(0));
        let jwks = Jwks::new(&serve(published.clone(), fetches.clone()).await, None);
        jwks.prefetch().await.expect("prefetch");
        assert!(jwks.verify(&token(&first)).await.is_ok());

        // Another IAM node's key appears only after the first refetch: the second one finds it.
        let publish_later = published.clone();
        let second_jwk = jwk(&second);
        tokio::spawn(async move {
            tokio::time::sleep(REFETCH_EVERY / 2).await;
            publish_later.lock().unwrap_or_else(|p| p.into_inner()).push(second_jwk);
        });
        let started = Instant::now();
        let claims = jwks.verify(&token(&second)).await.expect("the second key verifies once published");
        assert_eq!(claims.sub, "user:alice");
        assert!(started.elapsed() < REFETCH_EVERY * 3, "{:?}", started.elapsed());

        // A key nobody publishes is refused after a bounded wait, however many callers ask, and
        // IAM sees one fetch a window.
        let before = *fetches.lock().unwrap_or_else(|p| p.into_inner());
        let bogus = token(&key("bogus"));
        let callers: Vec<_> = (0..20).map(|_| jwks.verify(&bogus)).collect();
        let started = Instant::now();
        for refused in futures_util::future::join_all(callers).await {
            let refused = refused.expect_err("unknown key");
            assert!(refused.to_string().contains("unknown key bogus"), "{refused}");
        }
        assert!(started.elapsed() < REFETCH_EVERY * 3, "{:?}", started.elapsed());
        let fetched = *fetches.lock().unwrap_or_else(|p| p.into_inner()) - before;
        assert!(fetched <= FETCHES_PER_UNKNOWN_KEY, "{fetched} fetches for one unknown key");
    }
}
