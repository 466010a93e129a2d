//! Asking IAM: tokens verified locally, decisions asked of IAM's Authorize and cached.
//!
//! A decision is reused for `decision_ttl`; after that it is asked again, which is how a
//! revocation or a binding change reaches this service (within that bound). While IAM cannot be
//! reached, a cached decision keeps answering (whatever its age) as long as the token itself is
//! valid; a request with nothing cached gets UNAVAILABLE.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use photon_api::iam::v1 as pb;
use photon_api::iam::v1::authz_client::AuthzClient;
use tonic::transport::Channel;

use crate::claims::{Caller, Claims};
use crate::error::AuthError;
use crate::jwks::Jwks;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// IAM's API URL.
    pub iam_url: String,
    /// CA that signs IAM's certificate (system roots when unset).
    pub ca: Option<PathBuf>,
    /// How long a decision is reused before IAM is asked again.
    pub decision_ttl: Duration,
    /// Bound on one Authorize call.
    pub call_timeout: Duration,
}

impl AuthConfig {
    pub fn new(iam_url: impl Into<String>) -> Self {
        Self {
            iam_url: iam_url.into(),
            ca: None,
            decision_ttl: Duration::from_secs(10),
            call_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Clone)]
struct Cached {
    allowed: bool,
    reason: String,
    at: Instant,
}

/// Cheap to share behind an `Arc`.
pub struct AuthClient {
    config: AuthConfig,
    jwks: Jwks,
    authz: AuthzClient<Channel>,
    decisions: Mutex<HashMap<(String, String, String), Cached>>,
}

impl AuthClient {
    pub fn new(config: AuthConfig) -> Result<Self, String> {
        let options = photon_client::ChannelOptions {
            ca: config.ca.clone(),
            connect_timeout: Some(config.call_timeout),
            ..Default::default()
        };
        let channel = photon_client::lazy_channel(&config.iam_url, &options).map_err(|e| e.to_string())?;
        Ok(Self {
            jwks: Jwks::new(&config.iam_url, config.ca.clone()),
            authz: AuthzClient::new(channel),
            decisions: Mutex::default(),
            config,
        })
    }

    /// The verifier of this client's tokens.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Fetches IAM's signing keys now (for [`crate::interceptor`], which cannot fetch).
    pub async fn prefetch_keys(&self) -> Result<(), AuthError> {
        self.jwks.prefetch().await.map_err(AuthError::Unavailable)
    }

    /// Verifies `token` locally (no call to IAM once its key is known).
    pub async fn authenticate(&self, token: &str) -> Result<Claims, AuthError> {
        self.jwks.verify(token).await
    }

    /// Whether the holder of `token` may do `action` on `resource`.
    pub async fn authorize(&self, token: &str, action: &str, resource: &str) -> Result<Caller, AuthError> {
        let claims = self.authenticate(token).await?;
        let key = (claims.jti.clone(), action.to_string(), resource.to_string());
        self.decide(key, self.ask(token, "", action, resource)).await?;
        Ok(Caller::from(&claims))
    }

    /// Whether `principal` — not this request's token holder: the owner of an S3 access key,
    /// say — may do `action` on `resource`. Asked with this service's own `service_token`,
    /// which needs `iam:principals:authorize`; cached and outage-tolerant like [`Self::authorize`].
    pub async fn authorize_principal(
        &self,
        service_token: &str,
        principal: &str,
        action: &str,
        resource: &str,
    ) -> Result<(), AuthError> {
        let key = (format!("principal {principal}"), action.to_string(), resource.to_string());
        self.decide(key, self.ask(service_token, principal, action, resource)).await
    }

    /// A cached decision while fresh; otherwise IAM's answer (cached); while IAM cannot be
    /// reached, the last cached answer whatever its age.
    async fn decide(
        &self,
        key: (String, String, String),
        ask: impl std::future::Future<Output = Result<Cached, Asked>>,
    ) -> Result<(), AuthError> {
        let cached = self.decisions.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let fresh = cached.as_ref().filter(|c| c.at.elapsed() < self.config.decision_ttl).cloned();
        let decision = match fresh {
            Some(decision) => decision,
            None => match ask.await {
                Ok(decision) => {
                    let mut decisions = self.decisions.lock().unwrap_or_else(|p| p.into_inner());
                    if decisions.len() > 100_000 {
                        decisions.retain(|_, c| c.at.elapsed() < self.config.decision_ttl);
                    }
                    decisions.insert(key, decision.clone());
                    decision
                }
                Err(Asked::Refused(e)) => {
                    self.decisions.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
                    return Err(e);
                }
                Err(Asked::Unreachable(why)) => match cached {
                    Some(stale) => {
                        let (_, action, resource) = &key;
                        tracing::warn!(error = %why, action, resource, "IAM unreachable; answering from a cached decision");
                        stale
                    }
                    None => {
                        let (_, action, resource) = &key;
                        return Err(AuthError::Unavailable(format!(
                            "IAM is unreachable ({why}) and no earlier decision covers {action} on {resource}"
                        )));
                    }
                },
            },
        };
        if !decision.allowed {
            return Err(AuthError::PermissionDenied(decision.reason));
        }
        Ok(())
    }

    async fn ask(&self, token: &str, principal: &str, action: &str, resource: &str) -> Result<Cached, Asked> {
        let mut request = tonic::Request::new(pb::AuthorizeRequest {
            principal: principal.to_string(),
            action: action.into(),
            resource: resource.into(),
            context: None,
        });
        request.set_timeout(self.config.call_timeout);
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| Asked::Refused(AuthError::Unauthenticated("token is not a valid header value".into())))?;
        request.metadata_mut().insert("authorization", bearer);
        let mut authz = self.authz.clone();
        match tokio::time::timeout(self.config.call_timeout, authz.authorize(request)).await {
            Ok(Ok(answer)) => {
                let answer = answer.into_inner();
                Ok(Cached { allowed: answer.allowed, reason: answer.reason, at: Instant::now() })
            }
            Ok(Err(status)) => match status.code() {
                tonic::Code::Unauthenticated => {
                    Err(Asked::Refused(AuthError::Unauthenticated(status.message().into())))
                }
                tonic::Code::InvalidArgument | tonic::Code::PermissionDenied => {
                    Err(Asked::Refused(AuthError::PermissionDenied(status.message().into())))
                }
                _ => Err(Asked::Unreachable(status.message().to_string())),
            },
            Err(_) => Err(Asked::Unreachable(format!("no answer within {:?}", self.config.call_timeout))),
        }
    }
}

enum Asked {
    /// IAM answered no (revoked token, bad request): never served from cache.
    Refused(AuthError),
    Unreachable(String),
}
