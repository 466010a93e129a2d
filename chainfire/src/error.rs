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

impl From<ChainfireError> for Status {
    fn from(e: ChainfireError) -> Self {
        let code = match &e {
            ChainfireError::Mvcc(MvccError::Compacted { .. } | MvccError::FutureRevision) => Code::OutOfRange,
            ChainfireError::Mvcc(MvccError::KeyNotFound | MvccError::DuplicateKey) => Code::InvalidArgument,
            ChainfireError::Mvcc(MvccError::LeaseNotFound) => Code::NotFound,
            ChainfireError::Mvcc(MvccError::LeaseExists) => Code::FailedPrecondition,
            ChainfireError::EmptyKey | ChainfireError::TooManyOps | ChainfireError::RequestTooLarge => {
                Code::InvalidArgument
            }
            ChainfireError::InvalidArgument(_) => Code::InvalidArgument,
            ChainfireError::NoLeader | ChainfireError::Timeout | ChainfireError::Stopped => Code::Unavailable,
            ChainfireError::Storage(_) => Code::Internal,
        };
        if let ChainfireError::Storage(failure) = &e {
            tracing::error!(error = %failure, "storage failure while serving a request");
        }
        Status::new(code, e.to_string())
    }
}
