//! IAM's errors, and the one mapping to gRPC statuses and HTTP answers.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error("{field}: {message}")]
    InvalidArgument { field: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The caller could not be identified: no, malformed, expired or revoked credentials.
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// flaredb could not be reached or did not answer in time.
    #[error("the IAM database is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl IamError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidArgument { field, message: message.into() }
    }

    /// The HTTP status and error code the REST API answers with.
    pub fn http(&self) -> (axum::http::StatusCode, &'static str) {
        use axum::http::StatusCode as H;
        match self {
            Self::InvalidArgument { .. } => (H::BAD_REQUEST, "invalid_argument"),
            Self::NotFound(_) => (H::NOT_FOUND, "not_found"),
            Self::AlreadyExists(_) => (H::CONFLICT, "already_exists"),
            Self::Unauthenticated(_) => (H::UNAUTHORIZED, "unauthenticated"),
            Self::PermissionDenied(_) => (H::FORBIDDEN, "permission_denied"),
            Self::FailedPrecondition(_) => (H::CONFLICT, "failed_precondition"),
            Self::Unavailable(_) => (H::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(_) => (H::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<flaredb_client::Error> for IamError {
    fn from(e: flaredb_client::Error) -> Self {
        match e {
            flaredb_client::Error::Refused(status) => Self::Internal(format!("flaredb refused: {}", status.message())),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl axum::response::IntoResponse for IamError {
    fn into_response(self) -> axum::response::Response {
        let (status, code) = self.http();
        if let Self::Internal(failure) = &self {
            tracing::error!(error = %failure, "internal error while serving a request");
        }
        let body = serde_json::json!({ "error": { "code": code, "message": self.to_string() } });
        (status, axum::Json(body)).into_response()
    }
}

impl From<IamError> for Status {
    fn from(e: IamError) -> Self {
        if let IamError::Internal(failure) = &e {
            tracing::error!(error = %failure, "internal error while serving a request");
        }
        Status::new(e.code(), e.to_string())
    }
}
