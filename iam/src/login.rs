//! Getting tokens: for a password, for an access key, or for a refresh token. Shared by the
//! gRPC Tokens service and `POST /api/v1/auth/token`.

use photon_api::iam::v1 as pb;

use crate::error::IamError;
use crate::model::{AccessKey, Principal, ServiceAccount, User};
use crate::state::Iam;
use crate::tokens::TokenType;

/// One message for every failed login, so a caller cannot tell a wrong name from a wrong
/// password.
const BAD_CREDENTIALS: &str = "invalid credentials";

impl Iam {
    pub async fn login_password(&self, user: &str, password: &str) -> Result<pb::TokenResponse, IamError> {
        let Ok(addr) = crate::addr::Addr::user("", user) else {
            return Err(IamError::Unauthenticated(BAD_CREDENTIALS.into()));
        };
        if password.len() > 1024 {
            return Err(IamError::Unauthenticated(BAD_CREDENTIALS.into()));
        }
        let found = self.db.get::<User>(&addr.key).await?.map(|v| v.value);
        // An unknown name spends the same time on a stand-in hash, so timing does not reveal
        // which names exist; argon2 runs off the async threads either way.
        let hash = found.as_ref().map_or(DUMMY_HASH.to_string(), |u| u.password_hash.clone());
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || crate::password::verify(&password, &hash)).await.unwrap_or(false);
        let user = match found {
            Some(user) if ok => user,
            _ => return Err(IamError::Unauthenticated(BAD_CREDENTIALS.into())),
        };
        if user.disabled {
            return Err(IamError::Unauthenticated(format!("user {} is disabled", user.name)));
        }
        self.tokens_for(&format!("user:{}", user.name), &user.org)
    }

    pub async fn login_access_key(&self, key_id: &str, secret: &str) -> Result<pb::TokenResponse, IamError> {
        let (principal, org) = self.resolve_access_key(key_id).await.map_err(|e| match e {
            IamError::NotFound(_) => IamError::Unauthenticated(BAD_CREDENTIALS.into()),
            other => other,
        })?;
        let expected = self.access_key_secret(key_id).await?;
        if !ring_eq(expected.as_bytes(), secret.as_bytes()) {
            return Err(IamError::Unauthenticated(BAD_CREDENTIALS.into()));
        }
        self.tokens_for(&principal, &org)
    }

    /// A new access token for a valid, unrevoked refresh token whose principal is still active.
    pub async fn refresh(&self, refresh_token: &str) -> Result<pb::TokenResponse, IamError> {
        let claims = self.validate(refresh_token)?;
        if claims.typ != TokenType::Refresh {
            return Err(IamError::Unauthenticated("not a refresh token".into()));
        }
        self.ensure_active(&claims.sub).await?;
        let (access, access_claims) = self.keyring.issue(
            &claims.sub,
            &claims.org,
            TokenType::Access,
            self.config.tokens.access_ttl_seconds,
            self.new_id()?,
        )?;
        Ok(pb::TokenResponse {
            access_token: access,
            expires_at: access_claims.exp,
            refresh_token: refresh_token.to_string(),
            refresh_expires_at: claims.exp,
            principal: claims.sub,
        })
    }

    /// The principal and org an access key belongs to, if it is enabled and its owner active.
    pub async fn resolve_access_key(&self, key_id: &str) -> Result<(String, String), IamError> {
        crate::addr::validate_key_id(key_id).map_err(|_| IamError::NotFound(format!("access key {key_id:?}")))?;
        let key = self.db.fetch::<AccessKey>(&format!("akey/{key_id}"), || format!("access key {key_id}")).await?.value;
        if key.disabled {
            return Err(IamError::Unauthenticated(format!("access key {key_id} is disabled")));
        }
        let org = self.ensure_active(&key.principal).await?;
        Ok((key.principal, org))
    }

    pub async fn access_key_secret(&self, key_id: &str) -> Result<String, IamError> {
        let key = self.db.fetch::<AccessKey>(&format!("akey/{key_id}"), || format!("access key {key_id}")).await?.value;
        String::from_utf8(self.server_key.open(&key.sealed_secret)?)
            .map_err(|_| IamError::Internal(format!("access key {key_id} secret is not text")))
    }

    /// Errors unless the principal exists and is enabled; answers its org.
    async fn ensure_active(&self, principal: &str) -> Result<String, IamError> {
        match Principal::parse("principal", principal)? {
            Principal::User(name) => {
                let user = self.db.get::<User>(&format!("user/{name}")).await?;
                match user {
                    Some(u) if !u.value.disabled => Ok(u.value.org),
                    Some(_) => Err(IamError::Unauthenticated(format!("user {name} is disabled"))),
                    None => Err(IamError::Unauthenticated(format!("user {name} no longer exists"))),
                }
            }
            Principal::ServiceAccount { org, project, name } => {
                let account = self.db.get::<ServiceAccount>(&format!("sa/{org}/{project}/{name}")).await?;
                match account {
                    Some(a) if !a.value.disabled => Ok(org),
                    Some(_) => Err(IamError::Unauthenticated(format!("{principal} is disabled"))),
                    None => Err(IamError::Unauthenticated(format!("{principal} no longer exists"))),
                }
            }
            Principal::Group { .. } => Err(IamError::Unauthenticated("a group cannot log in".into())),
        }
    }

    fn tokens_for(&self, principal: &str, org: &str) -> Result<pb::TokenResponse, IamError> {
        let tokens = &self.config.tokens;
        let (access, access_claims) =
            self.keyring.issue(principal, org, TokenType::Access, tokens.access_ttl_seconds, self.new_id()?)?;
        let (refresh, refresh_claims) =
            self.keyring.issue(principal, org, TokenType::Refresh, tokens.refresh_ttl_seconds, self.new_id()?)?;
        Ok(pb::TokenResponse {
            access_token: access,
            expires_at: access_claims.exp,
            refresh_token: refresh,
            refresh_expires_at: refresh_claims.exp,
            principal: principal.to_string(),
        })
    }
}

/// Constant-time comparison.
fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A valid argon2id hash of a random password, verified against when the user does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$2Lr2hZ2p6mQ5xq0qH1m7C0x7VvUe9T5r1qQm8yq5n0A";

#[cfg(test)]
mod tests {
    #[test]
    fn the_stand_in_hash_is_a_real_argon2id_hash() {
        // If it did not parse, an unknown name would answer faster than a wrong password.
        let parsed = argon2::password_hash::PasswordHash::new(super::DUMMY_HASH).expect("a PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(!crate::password::verify("anything", super::DUMMY_HASH));
    }
}
