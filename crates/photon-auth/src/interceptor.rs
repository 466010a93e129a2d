//! A tonic interceptor, for services that serve tonic directly rather than through the
//! runtime's router (which uses [`crate::Guard`]): it authenticates the bearer token with the
//! keys already fetched (interceptors are synchronous, so no I/O) and puts the [`Caller`] in the
//! request's extensions; handlers then call [`AuthClient::authorize`] with their action.
//! Call [`AuthClient::prefetch_keys`] at start so the keys are there.

use std::sync::Arc;

use tonic::{Request, Status};

use crate::claims::Caller;
use crate::client::AuthClient;
use crate::jwks::Offline;

/// `tonic::service::interceptor(authenticate(client))`, or `Server::new_with_interceptor`.
pub fn authenticate(client: Arc<AuthClient>) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut request: Request<()>| {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing authorization: Bearer <token>"))?;
        let text = header.to_str().map_err(|_| Status::unauthenticated("authorization header is not text"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization is not 'Bearer <token>'"))?;
        let claims = client.jwks().verify_offline(token.trim()).map_err(|e| match e {
            Offline::Rejected(e) => e.status(),
            Offline::UnknownKey(kid) => Status::unauthenticated(format!("token signed by unknown key {kid}")),
        })?;
        request.extensions_mut().insert(Caller::from(&claims));
        Ok(request)
    }
}
