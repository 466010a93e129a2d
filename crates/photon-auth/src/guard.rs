//! The middleware: in front of a service's REST routes and gRPC services alike, it finds what
//! the request declares (`rules`), checks the bearer token and asks for the decision, and
//! answers 401/403/503 (or the gRPC statuses) itself. `/health`, `/metrics` and the runtime's
//! own gRPC service stay open. The caller lands in the request's extensions as [`Caller`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;

use crate::client::AuthClient;
use crate::error::AuthError;
use crate::rules::{need, Need, Rule};

#[derive(Clone)]
pub struct Guard {
    client: Arc<AuthClient>,
    rules: Arc<Vec<Rule>>,
}

/// Paths every service keeps open.
fn always_open(path: &str) -> bool {
    path == "/health" || path == "/metrics" || path.starts_with("/photon.runtime.v1.Runtime/")
}

impl Guard {
    pub fn new(client: Arc<AuthClient>, rules: Vec<Rule>) -> Self {
        Self { client, rules: Arc::new(rules) }
    }

    /// `router` with every request going through the guard.
    pub fn apply(self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self, middleware))
    }
}

async fn middleware(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if always_open(&path) {
        return next.run(request).await;
    }
    let grpc = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let (action, resource) = match need(&guard.rules, request.method(), &path, request.headers()) {
        Need::Nothing => return next.run(request).await,
        Need::Action { action, resource } => (action, resource),
        Need::Undeclared(why) => return refuse(request, AuthError::PermissionDenied(why), grpc).await,
    };
    let token = match bearer(request.headers()) {
        Ok(token) => token,
        Err(e) => return refuse(request, e, grpc).await,
    };
    match guard.client.authorize(&token, &action, &resource).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => refuse(request, e, grpc).await,
    }
}

/// A request body read before a refusal is answered, at most this much.
const DRAIN_BYTES: usize = 64 << 10;

/// The refusal of `request`, after reading what the client is still sending of a small body:
/// answering before the body has arrived makes HTTP/2 reset the stream, and some clients
/// (curl among them) then report the reset instead of the answer.
async fn refuse(request: Request, error: AuthError, grpc: bool) -> Response {
    let body = request.into_body();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), axum::body::to_bytes(body, DRAIN_BYTES)).await;
    error.respond(grpc)
}

/// The bearer token of a request's `authorization` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Result<String, AuthError> {
    let value = headers
        .get("authorization")
        .ok_or_else(|| AuthError::Unauthenticated("missing authorization: Bearer <token>".into()))?;
    let text = value.to_str().map_err(|_| AuthError::Unauthenticated("authorization header is not text".into()))?;
    text.strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AuthError::Unauthenticated("authorization is not 'Bearer <token>'".into()))
}
