//! The `photon.iam.v1.Authz` service: the decisions every other service asks for, decided in
//! memory from the policy set (no database read on this path).

use std::net::IpAddr;

use photon_api::iam::v1 as pb;
use photon_api::iam::v1::authz_server::Authz;
use tonic::{Request, Response, Status};

use crate::authz::action::validate_action;
use crate::authz::condition::RequestContext;
use crate::error::IamError;
use crate::model::SYSTEM;
use crate::state::Iam;
use crate::tokens::{now, Claims};

pub struct AuthzService {
    iam: Iam,
}

impl AuthzService {
    pub fn new(iam: Iam) -> Self {
        Self { iam }
    }

    /// Answers one question. The principal is the caller's own unless `principal` names
    /// another, which needs `iam:principals:authorize` on system (services asking for users).
    async fn answer(
        &self,
        caller: &Claims,
        source: Option<IpAddr>,
        r: pb::AuthorizeRequest,
    ) -> Result<pb::AuthorizeResponse, IamError> {
        validate_action(&r.action)?;
        if r.resource.is_empty() || r.resource.len() > 1024 {
            return Err(IamError::invalid("resource", "give a resource path of 1-1024 bytes"));
        }
        let principal = if r.principal.is_empty() || r.principal == caller.sub {
            caller.sub.clone()
        } else {
            crate::model::Principal::parse("principal", &r.principal)?;
            self.iam.require(caller, "iam:principals:authorize", SYSTEM, source).await?;
            r.principal
        };
        let context = r.context.unwrap_or_default();
        let source_ip = if context.source_ip.is_empty() {
            None
        } else {
            Some(context.source_ip.parse().map_err(|_| {
                IamError::invalid("context.source_ip", format!("{:?} is not an IP address", context.source_ip))
            })?)
        };
        let context =
            RequestContext { source_ip, now: now(), resource_labels: context.resource_labels.into_iter().collect() };
        let decision = self.iam.decide(&principal, &r.action, &r.resource, &context).await;
        Ok(pb::AuthorizeResponse {
            allowed: decision.allowed,
            reason: decision.reason,
            matched_binding: decision.binding.unwrap_or_default(),
        })
    }
}

#[tonic::async_trait]
impl Authz for AuthzService {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let caller = self.iam.caller(request.metadata())?;
        let source = request.remote_addr().map(|a| a.ip());
        Ok(Response::new(self.answer(&caller, source, request.into_inner()).await?))
    }

    async fn batch_authorize(
        &self,
        request: Request<pb::BatchAuthorizeRequest>,
    ) -> Result<Response<pb::BatchAuthorizeResponse>, Status> {
        let caller = self.iam.caller(request.metadata())?;
        let source = request.remote_addr().map(|a| a.ip());
        let requests = request.into_inner().requests;
        if requests.len() > 1000 {
            return Err(
                IamError::invalid("requests", format!("{} questions; the limit is 1000", requests.len())).into()
            );
        }
        let mut responses = Vec::with_capacity(requests.len());
        for r in requests {
            responses.push(self.answer(&caller, source, r).await?);
        }
        Ok(Response::new(pb::BatchAuthorizeResponse { responses }))
    }

    async fn resolve_access_key(
        &self,
        request: Request<pb::ResolveAccessKeyRequest>,
    ) -> Result<Response<pb::ResolveAccessKeyResponse>, Status> {
        let caller = self.iam.caller(request.metadata())?;
        let source = request.remote_addr().map(|a| a.ip());
        self.iam.require(&caller, "iam:access-keys:resolve", SYSTEM, source).await?;
        let key_id = request.into_inner().key_id;
        let (principal, org) = self.iam.resolve_access_key(&key_id).await?;
        let secret = self.iam.access_key_secret(&key_id).await?;
        Ok(Response::new(pb::ResolveAccessKeyResponse { principal, secret, org }))
    }

    async fn ping(&self, _: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        Ok(Response::new(pb::Empty {}))
    }
}
