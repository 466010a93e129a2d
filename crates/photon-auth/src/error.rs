//! Why a request was refused, and its answer as HTTP (REST) or as a gRPC status.

use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No, malformed, expired or revoked token: 401 / UNAUTHENTICATED.
    #[error("{0}")]
    Unauthenticated(String),
    /// The token is fine; the action is not allowed: 403 / PERMISSION_DENIED.
    #[error("{0}")]
    PermissionDenied(String),
    /// IAM could not be asked and nothing cached answers: 503 / UNAVAILABLE.
    #[error("{0}")]
    Unavailable(String),
}

impl AuthError {
    pub fn status(&self) -> tonic::Status {
        match self {
            Self::Unauthenticated(m) => tonic::Status::unauthenticated(m.clone()),
            Self::PermissionDenied(m) => tonic::Status::permission_denied(m.clone()),
            Self::Unavailable(m) => tonic::Status::unavailable(m.clone()),
        }
    }

    /// The answer for a request: a gRPC status for gRPC calls, JSON for REST.
    pub fn respond(&self, grpc: bool) -> Response {
        if grpc {
            return self.status().into_http::<axum::body::Body>().into_response();
        }
        let mut response = photon_runtime::rest::status_response(&self.status());
        if matches!(self, Self::Unauthenticated(_)) {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}
