//! Signed tokens: EdDSA (Ed25519) JWTs, the keyring that signs and verifies them, and the
//! JWKS that lets any standard JWT library verify them too.
//!
//! Signing keys live in flaredb (`signing/<kid>`), their private halves sealed with the server
//! key, so every IAM replica signs with the same keys. Rotation makes a new key active and
//! retires the old one: it stops signing but keeps verifying (and stays in the JWKS) for the
//! longest token lifetime, so tokens issued just before a rotation stay valid until they expire.

use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use photon_auth::verified::{Cached, VerifiedCache};

use crate::error::IamError;
use crate::secrets::{hex, ServerKey};
use flaredb_client::records::Records as Db;

pub use photon_auth::claims::{Claims, TokenType, AUDIENCE};

/// A signing key as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredKey {
    pub kid: String,
    pub created_at: i64,
    /// 0 while it signs; when it was retired otherwise.
    pub retired_at: i64,
    pub sealed_pkcs8: String,
    /// The raw public key, base64url (the JWK `x`).
    pub public_x: String,
}

flaredb_client::json_record!(StoredKey);

struct LoadedKey {
    stored: StoredKey,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The keys this replica signs and verifies with.
#[derive(Clone)]
pub struct Keyring {
    keys: Arc<RwLock<Vec<Arc<LoadedKey>>>>,
    verified: Arc<VerifiedCache>,
    issuer: String,
    /// How long a retired key keeps verifying: the longest token lifetime.
    overlap_seconds: i64,
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Keyring {
    pub fn new(issuer: String, overlap_seconds: i64) -> Self {
        Self { keys: Arc::default(), verified: Arc::default(), issuer, overlap_seconds }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Loads the keys from flaredb, creating the first one when there is none; drops keys
    /// retired longer ago than the overlap.
    pub async fn load(&self, db: &Db, server_key: &ServerKey) -> Result<(), IamError> {
        let mut stored: Vec<StoredKey> = db.list("signing/").await?.into_iter().map(|(_, k)| k).collect();
        if !stored.iter().any(|k| k.retired_at == 0) {
            stored.push(self.create_key(db, server_key).await?);
        }
        let horizon = now() - self.overlap_seconds;
        let mut loaded = Vec::new();
        for key in stored {
            if key.retired_at != 0 && key.retired_at < horizon {
                db.delete(&format!("signing/{}", key.kid)).await?;
                tracing::info!(kid = %key.kid, "dropped a signing key retired past the token lifetime");
                continue;
            }
            loaded.push(Arc::new(load_key(key, server_key)?));
        }
        loaded.sort_by(|a, b| b.stored.created_at.cmp(&a.stored.created_at).then(b.stored.kid.cmp(&a.stored.kid)));
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(())
    }

    async fn create_key(&self, db: &Db, server_key: &ServerKey) -> Result<StoredKey, IamError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| IamError::Internal("key generation".into()))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| IamError::Internal("key parse".into()))?;
        let kid = hex(&server_key.random(8)?);
        let key = StoredKey {
            kid: kid.clone(),
            created_at: now(),
            retired_at: 0,
            sealed_pkcs8: server_key.seal(pkcs8.as_ref())?,
            public_x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        };
        db.create(&format!("signing/{kid}"), &key, || format!("signing key {kid}")).await?;
        tracing::info!(kid = %kid, "created a signing key");
        Ok(key)
    }

    /// Makes a new key active and retires the others; answers the new key's id.
    pub async fn rotate(&self, db: &Db, server_key: &ServerKey) -> Result<String, IamError> {
        let fresh = self.create_key(db, server_key).await?;
        for (key, mut old) in db.list::<StoredKey>("signing/").await? {
            if old.retired_at == 0 && old.kid != fresh.kid {
                old.retired_at = now();
                db.put_with_ttl(&key, &old, 0).await?;
            }
        }
        self.load(db, server_key).await?;
        Ok(fresh.kid)
    }

    fn active(&self) -> Result<Arc<LoadedKey>, IamError> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .find(|k| k.stored.retired_at == 0)
            .or_else(|| keys.first())
            .cloned()
            .ok_or_else(|| IamError::Internal("no signing key loaded".into()))
    }

    /// Signs a token for `sub` of type `typ` that lives `ttl_seconds`.
    pub fn issue(
        &self,
        sub: &str,
        org: &str,
        typ: TokenType,
        ttl_seconds: i64,
        jti: String,
    ) -> Result<(String, Claims), IamError> {
        let key = self.active()?;
        let iat = now();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: sub.to_string(),
            aud: AUDIENCE.to_string(),
            iat,
            exp: iat + ttl_seconds,
            jti,
            typ,
            org: org.to_string(),
        };
        let header = Header { alg: Algorithm::EdDSA, kid: Some(key.stored.kid.clone()), ..Default::default() };
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| IamError::Internal(format!("signing a token: {e}")))?;
        Ok((token, claims))
    }

    /// Checks signature, issuer, audience and expiry (no leeway); revocation is the caller's.
    /// A token verified before costs a lookup (its expiry is still checked).
    pub fn verify(&self, token: &str) -> Result<Claims, IamError> {
        match self.verified.get(token) {
            Cached::Valid(claims) => return Ok(claims),
            Cached::Expired => return Err(IamError::Unauthenticated("token has expired".into())),
            Cached::Unknown => {}
        }
        let claims = self.verify_signed(token)?;
        self.verified.insert(token, &claims);
        Ok(claims)
    }

    fn verify_signed(&self, token: &str) -> Result<Claims, IamError> {
        if token.len() > 8192 {
            return Err(IamError::Unauthenticated("token is over 8 KiB".into()));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| IamError::Unauthenticated(format!("malformed token: {e}")))?;
        if header.alg != Algorithm::EdDSA {
            return Err(IamError::Unauthenticated(format!("token algorithm {:?} is not EdDSA", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| IamError::Unauthenticated("token names no key (kid)".into()))?;
        let key = {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            keys.iter().find(|k| k.stored.kid == kid).cloned()
        }
        .ok_or_else(|| IamError::Unauthenticated(format!("token signed by unknown or expired key {kid}")))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[&self.issuer]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map(|d| d.claims).map_err(|e| {
            IamError::Unauthenticated(match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token has expired".to_string(),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "token signature is invalid".to_string(),
                _ => format!("token rejected: {e}"),
            })
        })
    }

    /// The JWKS document: every key that still verifies.
    pub fn jwks(&self) -> serde_json::Value {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                    "kid": k.stored.kid, "x": k.stored.public_x,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn load_key(stored: StoredKey, server_key: &ServerKey) -> Result<LoadedKey, IamError> {
    let pkcs8 = server_key.open(&stored.sealed_pkcs8)?;
    let encoding = EncodingKey::from_ed_der(&pkcs8);
    let public = URL_SAFE_NO_PAD
        .decode(&stored.public_x)
        .map_err(|_| IamError::Internal(format!("signing key {} has a bad public key", stored.kid)))?;
    let decoding = DecodingKey::from_ed_der(&public);
    Ok(LoadedKey { stored, encoding, decoding })
}
