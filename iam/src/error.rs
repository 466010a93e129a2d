//! IAM's errors, and the one mapping to gRPC statuses (and through them to HTTP answers).

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

impl From<flaredb_client::records::RecordError> for IamError {
    fn from(e: flaredb_client::records::RecordError) -> Self {
        use flaredb_client::records::RecordError as R;
        match e {
            R::NotFound(what) => Self::NotFound(what),
            R::AlreadyExists(what) => Self::AlreadyExists(what),
            R::Db(e) => e.into(),
            other @ (R::Decode { .. } | R::Encode(_)) => Self::Internal(other.to_string()),
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

/// REST answers are the gRPC status in HTTP form (`photon_runtime::rest::status_response`), so
/// the two APIs cannot drift apart.
impl axum::response::IntoResponse for IamError {
    fn into_response(self) -> axum::response::Response {
        photon_runtime::rest::status_response(&Status::from(self))
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
