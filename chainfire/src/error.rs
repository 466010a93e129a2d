//! Chainfire's errors, and the one mapping to gRPC statuses: the codes and messages etcd's
//! `rpctypes` uses, so etcdctl and etcd clients print and handle the same failures.

use tonic::{Code, Status};

use crate::mvcc::model::MvccError;
use crate::mvcc::read::{ReadError, StorageFailure};

#[derive(Debug, thiserror::Error)]
pub enum ChainfireError {
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("{0}")]
    InvalidArgument(String),
    /// A REST read of a key that does not exist (etcd's Range answers an empty list instead).
    #[error("key {0:?} not found")]
    NoSuchKey(String),
    #[error(transparent)]
    Storage(#[from] StorageFailure),
}

impl From<ReadError> for ChainfireError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Refused(refusal) => Self::Mvcc(refusal),
            ReadError::Storage(failure) => Self::Storage(failure),
        }
    }
}

impl ChainfireError {
    /// The HTTP status and error code the REST API answers with.
    pub fn http(&self) -> (axum::http::StatusCode, &'static str) {
        use axum::http::StatusCode as H;
        match self {
            ChainfireError::Mvcc(MvccError::Compacted { .. }) => (H::GONE, "compacted"),
            ChainfireError::Mvcc(MvccError::FutureRevision) => (H::BAD_REQUEST, "future_revision"),
            ChainfireError::Mvcc(MvccError::KeyNotFound) => (H::NOT_FOUND, "key_not_found"),
            ChainfireError::Mvcc(MvccError::LeaseNotFound) => (H::NOT_FOUND, "lease_not_found"),
            ChainfireError::Mvcc(MvccError::LeaseExists) => (H::CONFLICT, "lease_exists"),
            ChainfireError::Mvcc(MvccError::NoSpace) => (H::INSUFFICIENT_STORAGE, "no_space"),
            ChainfireError::Mvcc(MvccError::DuplicateKey) => (H::BAD_REQUEST, "duplicate_key"),
            ChainfireError::EmptyKey => (H::BAD_REQUEST, "empty_key"),
            ChainfireError::TooManyOps => (H::BAD_REQUEST, "too_many_ops"),
            ChainfireError::RequestTooLarge => (H::PAYLOAD_TOO_LARGE, "request_too_large"),
            ChainfireError::InvalidArgument(_) => (H::BAD_REQUEST, "invalid_argument"),
            ChainfireError::NoSuchKey(_) => (H::NOT_FOUND, "not_found"),
            ChainfireError::NoLeader | ChainfireError::Timeout | ChainfireError::Stopped => {
                (H::SERVICE_UNAVAILABLE, "unavailable")
            }
            ChainfireError::Storage(_) => (H::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl axum::response::IntoResponse for ChainfireError {
    fn into_response(self) -> axum::response::Response {
        let (status, code) = self.http();
        if let ChainfireError::Storage(failure) = &self {
            tracing::error!(error = %failure, "storage failure while serving a request");
        }
        photon_runtime::rest::error_response(status, code, &self.to_string())
    }
}

impl From<ChainfireError> for Status {
    fn from(e: ChainfireError) -> Self {
        let code = match &e {
            ChainfireError::Mvcc(MvccError::Compacted { .. } | MvccError::FutureRevision) => Code::OutOfRange,
            ChainfireError::Mvcc(MvccError::KeyNotFound | MvccError::DuplicateKey) => Code::InvalidArgument,
            ChainfireError::Mvcc(MvccError::LeaseNotFound) => Code::NotFound,
            ChainfireError::Mvcc(MvccError::LeaseExists) => Code::FailedPrecondition,
            ChainfireError::Mvcc(MvccError::NoSpace) => Code::ResourceExhausted,
            ChainfireError::EmptyKey | ChainfireError::TooManyOps | ChainfireError::RequestTooLarge => {
                Code::InvalidArgument
            }
            ChainfireError::InvalidArgument(_) => Code::InvalidArgument,
            ChainfireError::NoSuchKey(_) => Code::NotFound,
            ChainfireError::NoLeader | ChainfireError::Timeout | ChainfireError::Stopped => Code::Unavailable,
            ChainfireError::Storage(_) => Code::Internal,
        };
        if let ChainfireError::Storage(failure) = &e {
            tracing::error!(error = %failure, "storage failure while serving a request");
        }
        Status::new(code, e.to_string())
    }
}
