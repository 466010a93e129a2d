//! The `photon.iam.v1.Tokens` service.

use photon_api::iam::v1 as pb;
use photon_api::iam::v1::tokens_server::Tokens;
use tonic::{Request, Response, Status};

use crate::error::IamError;
use crate::model::{org_of, SYSTEM};
use crate::state::Iam;

pub struct TokensService {
    iam: Iam,
}

impl TokensService {
    pub fn new(iam: Iam) -> Self {
        Self { iam }
    }
}

#[tonic::async_trait]
impl Tokens for TokensService {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let answer = match request.into_inner().credentials {
            Some(pb::issue_token_request::Credentials::Password(p)) => {
                self.iam.login_password(&p.user, &p.password).await?
            }
            Some(pb::issue_token_request::Credentials::AccessKey(k)) => {
                self.iam.login_access_key(&k.key_id, &k.secret).await?
            }
            None => return Err(IamError::invalid("credentials", "give password or access_key").into()),
        };
        Ok(Response::new(answer))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        Ok(Response::new(self.iam.refresh(&request.into_inner().refresh_token).await?))
    }

    async fn revoke_token(&self, request: Request<pb::RevokeTokenRequest>) -> Result<Response<pb::Empty>, Status> {
        let caller = self.iam.caller(request.metadata())?;
        let source = request.remote_addr().map(|a| a.ip());
        let body = request.into_inner();
        // An expired or foreign token needs no revocation and gets a clear answer.
        let target = self.iam.keyring.verify(&body.token)?;
        if target.sub != caller.sub {
            let scope = org_of(&format!("orgs/{}", target.org)).filter(|o| !o.is_empty()).map(|o| format!("orgs/{o}"));
            let scope = scope.unwrap_or_else(|| SYSTEM.to_string());
            self.iam.require(&caller, "iam:tokens:revoke", &scope, source).await?;
        }
        self.iam.revoke(&target.jti, &target.sub, target.exp).await?;
        self.iam.audit(&caller.sub, "iam:tokens:revoke", &target.sub, "ok", &format!("token {}", target.jti)).await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn validate_token(
        &self,
        request: Request<pb::ValidateTokenRequest>,
    ) -> Result<Response<pb::ValidateTokenResponse>, Status> {
        let claims = self.iam.validate(&request.into_inner().token)?;
        let groups = self.iam.policies().groups_of(&claims.sub).into_iter().collect();
        Ok(Response::new(pb::ValidateTokenResponse {
            principal: claims.sub,
            org: claims.org,
            expires_at: claims.exp,
            token_id: claims.jti,
            groups,
        }))
    }
}
