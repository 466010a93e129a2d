//! The one error type of resource APIs, mapped once to an HTTP status with a JSON body
//! (`{"error":{"code","message","field"}}`) and once to a gRPC status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// What is wrong with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field (`spec.records[2].data`).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name} already exists")]
    AlreadyExists { kind: &'static str, name: String },
    /// Optimistic concurrency: the resource changed since the version the caller read.
    #[error("{kind} {name} was changed concurrently (resource version {expected} is no longer current); read it again and retry")]
    Conflict { kind: &'static str, name: String, expected: i64 },
    #[error("{0}")]
    TooLarge(String),
    /// Nothing left to assign (a subnet with every address taken).
    #[error("{0}")]
    Exhausted(String),
    /// The request is well-formed but the system is not in a state that allows it (no pool
    /// configured, a resource still in use).
    #[error("{0}")]
    Precondition(String),
    #[error("chainfire is unavailable: {0}")]
    Unavailable(String),
    /// The store refused a request: a bug on our side, never the caller's fault.
    #[error("{0}")]
    Backend(String),
    /// Stored data that does not decode: a bug or a foreign writer, never the caller's fault.
    #[error("stored {0}")]
    Corrupt(String),
}

impl From<FieldError> for ResourceError {
    fn from(e: FieldError) -> Self {
        Self::Invalid { field: e.field, message: e.message }
    }
}

impl ResourceError {
    fn code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_argument"),
            Self::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Self::AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
            Self::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Exhausted(_) => (StatusCode::CONFLICT, "exhausted"),
            Self::Precondition(_) => (StatusCode::CONFLICT, "failed_precondition"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Backend(_) | Self::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code().0
    }
}

impl IntoResponse for ResourceError {
    fn into_response(self) -> Response {
        let (status, code) = self.code();
        let mut error = serde_json::json!({ "code": code, "message": self.to_string() });
        if let Self::Invalid { field, .. } = &self {
            error["field"] = serde_json::Value::from(field.clone());
        }
        (status, Json(serde_json::json!({ "error": error }))).into_response()
    }
}

impl From<ResourceError> for tonic::Status {
    fn from(e: ResourceError) -> Self {
        let message = e.to_string();
        match e {
            ResourceError::Invalid { .. } => tonic::Status::invalid_argument(message),
            ResourceError::NotFound { .. } => tonic::Status::not_found(message),
            ResourceError::AlreadyExists { .. } => tonic::Status::already_exists(message),
            ResourceError::Conflict { .. } => tonic::Status::aborted(message),
            ResourceError::TooLarge(_) | ResourceError::Exhausted(_) => tonic::Status::resource_exhausted(message),
            ResourceError::Precondition(_) => tonic::Status::failed_precondition(message),
            ResourceError::Unavailable(_) => tonic::Status::unavailable(message),
            ResourceError::Backend(_) | ResourceError::Corrupt(_) => tonic::Status::internal(message),
        }
    }
}
