//! A service's own identity towards IAM: a service account's access key, exchanged for tokens
//! that are renewed before they expire. Services use it where they ask IAM on behalf of
//! someone else (resolving S3 access keys, authorizing their owners).

use std::sync::Mutex;

use photon_api::iam::v1 as pb;
use photon_api::iam::v1::tokens_client::TokensClient;
use tonic::transport::Channel;

use crate::error::AuthError;

/// Renew this long before the token expires.
const RENEW_BEFORE_SECS: i64 = 60;

enum Source {
    Login { tokens: TokensClient<Channel>, key_id: String, secret: String },
    Fixed,
}

pub struct ServiceToken {
    source: Source,
    current: Mutex<Option<(String, i64)>>,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl ServiceToken {
    /// Logs in to IAM (on `channel`) with an access key when a token is first needed, and again
    /// before each token expires.
    pub fn login(channel: Channel, key_id: String, secret: String) -> Self {
        Self { source: Source::Login { tokens: TokensClient::new(channel), key_id, secret }, current: Mutex::default() }
    }

    /// A token obtained elsewhere, used as is (tests, tools).
    pub fn fixed(token: String) -> Self {
        Self { source: Source::Fixed, current: Mutex::new(Some((token, i64::MAX))) }
    }

    /// A token valid for at least a minute more.
    pub async fn get(&self) -> Result<String, AuthError> {
        if let Some((token, expires)) = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            if expires - now() > RENEW_BEFORE_SECS || matches!(self.source, Source::Fixed) {
                return Ok(token);
            }
        }
        let Source::Login { tokens, key_id, secret } = &self.source else {
            return Err(AuthError::Unauthenticated("the service's fixed token has expired".into()));
        };
        let credentials = pb::issue_token_request::Credentials::AccessKey(pb::AccessKeyCredentials {
            key_id: key_id.clone(),
            secret: secret.clone(),
        });
        let mut request = tonic::Request::new(pb::IssueTokenRequest { credentials: Some(credentials) });
        request.set_timeout(std::time::Duration::from_secs(5));
        let answer = tokens.clone().issue_token(request).await.map_err(|s| match s.code() {
            tonic::Code::Unauthenticated => {
                AuthError::Unauthenticated(format!("IAM refused this service's access key {key_id}: {}", s.message()))
            }
            _ => AuthError::Unavailable(format!("IAM did not issue this service a token: {}", s.message())),
        })?;
        let answer = answer.into_inner();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((answer.access_token.clone(), answer.expires_at));
        tracing::info!(principal = %answer.principal, "obtained a service token from IAM");
        Ok(answer.access_token)
    }
}
