//! What IAM's tokens say, shared by IAM (which signs them) and every verifier.

use serde::{Deserialize, Serialize};

/// The audience of every token IAM issues.
pub const AUDIENCE: &str = "photoncloud";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The principal: `user:<name>` or `sa:<org>/<project>/<name>`.
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token; what revocation names.
    pub jti: String,
    pub typ: TokenType,
    /// The principal's org (empty for system users).
    #[serde(default)]
    pub org: String,
}

/// The authenticated caller of a request, put in its extensions by the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: String,
    pub org: String,
    pub token_id: String,
    pub expires_at: i64,
}

impl From<&Claims> for Caller {
    fn from(c: &Claims) -> Self {
        Self { principal: c.sub.clone(), org: c.org.clone(), token_id: c.jti.clone(), expires_at: c.exp }
    }
}
