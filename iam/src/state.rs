//! The IAM server's shared state: the database, the server key, the signing keyring, and the
//! in-memory policy set and revocation list every decision reads (reloaded from flaredb after
//! local changes and every `tokens.refresh_ms`, so other replicas' changes arrive within it).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;

use crate::authz::condition::RequestContext;
use crate::authz::engine::{Decision, PolicySet};
use crate::config::IamConfig;
use crate::error::IamError;
use crate::model::{Binding, Group, Role};
use crate::secrets::ServerKey;
use crate::tokens::{now, Claims, Keyring, TokenType};
use flaredb_client::records::Records as Db;

#[derive(Clone)]
pub struct Iam {
    pub db: Db,
    pub server_key: Arc<ServerKey>,
    pub keyring: Keyring,
    pub config: Arc<IamConfig>,
    policies: Arc<RwLock<Arc<PolicySet>>>,
    revoked: Arc<RwLock<HashSet<String>>>,
}

/// One audit record (`audit/<at_ms>/<random>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at_ms: i64,
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub detail: String,
}

/// A revoked token (`revoked/<jti>`), kept until the token would have expired anyway.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Revoked {
    jti: String,
    principal: String,
    at: i64,
}

flaredb_client::json_record!(AuditRecord, Revoked);

impl Iam {
    /// Connects to flaredb (IAM Requires it: an error here ends the process), loads keys and
    /// policies.
    pub async fn start(
        config: IamConfig,
        flaredb_ca: Option<std::path::PathBuf>,
        issuer: String,
    ) -> anyhow::Result<Self> {
        let db = config.flaredb.connect(flaredb_ca).await.map_err(anyhow::Error::msg)?;
        let server_key = ServerKey::load_or_create(&config.master_key_file()).map_err(anyhow::Error::msg)?;
        let keyring = Keyring::new(issuer, config.tokens.refresh_ttl_seconds.max(config.tokens.access_ttl_seconds));
        let iam = Self {
            db,
            server_key: Arc::new(server_key),
            keyring,
            config: Arc::new(config),
            policies: Arc::default(),
            revoked: Arc::default(),
        };
        iam.keyring.load(&iam.db, &iam.server_key).await?;
        iam.reload_policies().await?;
        Ok(iam)
    }

    /// Rereads bindings, roles, groups and revocations.
    pub async fn reload_policies(&self) -> Result<(), IamError> {
        let bindings: Vec<Binding> = self.db.list("binding/").await?.into_iter().map(|(_, b)| b).collect();
        let roles: Vec<Role> = self.db.list("role/").await?.into_iter().map(|(_, r)| r).collect();
        let groups: Vec<Group> = self.db.list("group/").await?.into_iter().map(|(_, g)| g).collect();
        let revoked: HashSet<String> =
            self.db.list::<Revoked>("revoked/").await?.into_iter().map(|(_, r)| r.jti).collect();
        *self.policies.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(PolicySet::new(bindings, roles, groups));
        *self.revoked.write().unwrap_or_else(|p| p.into_inner()) = revoked;
        Ok(())
    }

    /// Keeps keys and policies fresh until `shutdown`.
    pub fn refresh_in_background(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) {
        let iam = self.clone();
        let every = Duration::from_millis(self.config.tokens.refresh_ms.max(50));
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = iam.reload_policies().await {
                    tracing::warn!(error = %e, "reloading policies failed; deciding with the last ones loaded");
                }
                if let Err(e) = iam.keyring.load(&iam.db, &iam.server_key).await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
            }
        });
    }

    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Verifies an access token: signature, expiry, type, revocation.
    pub fn validate(&self, token: &str) -> Result<Claims, IamError> {
        let claims = self.keyring.verify(token)?;
        if self.revoked.read().unwrap_or_else(|p| p.into_inner()).contains(&claims.jti) {
            return Err(IamError::Unauthenticated("token has been revoked".into()));
        }
        Ok(claims)
    }

    /// The caller of a gRPC call, from `authorization: Bearer <access token>`.
    pub fn caller(&self, metadata: &MetadataMap) -> Result<Claims, IamError> {
        let header = metadata
            .get("authorization")
            .ok_or_else(|| IamError::Unauthenticated("missing authorization: Bearer <token>".into()))?;
        let text = header.to_str().map_err(|_| IamError::Unauthenticated("authorization header is not text".into()))?;
        self.caller_from_header(text)
    }

    pub fn caller_from_header(&self, header: &str) -> Result<Claims, IamError> {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| IamError::Unauthenticated("authorization is not 'Bearer <token>'".into()))?;
        let claims = self.validate(token.trim())?;
        if claims.typ != TokenType::Access {
            return Err(IamError::Unauthenticated("a refresh token cannot authorize calls".into()));
        }
        Ok(claims)
    }

    /// Decides for `principal`; a denial is audited.
    pub async fn decide(&self, principal: &str, action: &str, resource: &str, context: &RequestContext) -> Decision {
        let decision = self.policies().decide(principal, action, resource, context);
        if !decision.allowed {
            self.audit(principal, action, resource, "denied", &decision.reason).await;
        }
        decision
    }

    /// Requires that `caller` may do `action` on `resource`: PermissionDenied (audited) if not.
    pub async fn require(
        &self,
        caller: &Claims,
        action: &str,
        resource: &str,
        source: Option<IpAddr>,
    ) -> Result<(), IamError> {
        let context = RequestContext { source_ip: source, now: now(), ..Default::default() };
        let decision = self.decide(&caller.sub, action, resource, &context).await;
        if !decision.allowed {
            return Err(IamError::PermissionDenied(decision.reason));
        }
        Ok(())
    }

    /// Records an admin change or a denial. Failing to write is logged, not fatal to the call
    /// that was decided (the log line carries the same record).
    pub async fn audit(&self, principal: &str, action: &str, resource: &str, outcome: &str, detail: &str) {
        let at_ms = now_ms();
        let record = AuditRecord {
            at_ms,
            principal: principal.into(),
            action: action.into(),
            resource: resource.into(),
            outcome: outcome.into(),
            detail: detail.into(),
        };
        tracing::info!(principal, action, resource, outcome, detail, "audit");
        let suffix = self.server_key.random(6).map(|b| crate::secrets::hex(&b)).unwrap_or_default();
        let key = format!("audit/{at_ms:016}/{suffix}");
        let ttl = self.config.audit.retention_days.saturating_mul(86_400);
        if let Err(e) = self.db.put_with_ttl(&key, &record, ttl).await {
            tracing::error!(error = %e, "could not write an audit record");
        }
    }

    /// Revokes the token with id `jti` until `exp`.
    pub async fn revoke(&self, jti: &str, principal: &str, exp: i64) -> Result<(), IamError> {
        let ttl = (exp - now()).max(1) as u64;
        let record = Revoked { jti: jti.into(), principal: principal.into(), at: now() };
        self.db.put_with_ttl(&format!("revoked/{jti}"), &record, ttl).await?;
        self.revoked.write().unwrap_or_else(|p| p.into_inner()).insert(jti.to_string());
        Ok(())
    }

    /// A fresh token id.
    pub fn new_id(&self) -> Result<String, IamError> {
        Ok(crate::secrets::hex(&self.server_key.random(12)?))
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
