//! FlareDB's errors, and the one mapping to gRPC statuses and HTTP answers.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum FlareError {
    #[error("key must not be empty")]
    EmptyKey,
    #[error("key is {len} bytes; the limit is {max} (limits.max_key_bytes)")]
    KeyTooLarge { len: usize, max: usize },
    #[error("value is {len} bytes; the limit is {max} (limits.max_value_bytes)")]
    ValueTooLarge { len: usize, max: usize },
    #[error("{what}: {len} items; the limit is {max} (limits.max_batch)")]
    TooMany { what: &'static str, len: usize, max: usize },
    #[error("unknown namespace {0:?} (declared: {1})")]
    UnknownNamespace(String, String),
    #[error("scan range is inverted: start {start:?} is after end {end:?}")]
    InvertedRange { start: String, end: String },
    #[error("key {0:?} is listed twice in one batch")]
    DuplicateKey(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A REST read of a key that does not exist.
    #[error("key {0:?} not found in namespace {1:?}")]
    NotFound(String, String),
    #[error("the keys of one BatchPut span regions {0} and {1}; a batch is atomic only within one region")]
    CrossRegion(u64, u64),
    #[error("no region on this store holds the key; refresh the region map")]
    WrongRegion,
    #[error(
        "the request was routed by region {given_id} at epoch {given_epoch}, but the key is now in region {id} at \
         epoch {epoch}; refresh the region map"
    )]
    StaleEpoch { given_id: u64, given_epoch: u64, id: u64, epoch: u64 },
    #[error("no region {0}")]
    NoSuchRegion(u64),
    #[error("region has no leader")]
    NoLeader,
    #[error("{0}")]
    Unavailable(String),
    #[error("request timed out")]
    Timeout,
    #[error("store is stopping")]
    Stopped,
    #[error("storage failure: {0}")]
    Storage(String),
}

impl FlareError {
    /// The HTTP status and error code the REST API answers with.
    pub fn http(&self) -> (axum::http::StatusCode, &'static str) {
        use axum::http::StatusCode as H;
        match self {
            Self::EmptyKey => (H::BAD_REQUEST, "empty_key"),
            Self::KeyTooLarge { .. } => (H::BAD_REQUEST, "key_too_large"),
            Self::ValueTooLarge { .. } => (H::PAYLOAD_TOO_LARGE, "value_too_large"),
            Self::TooMany { .. } => (H::BAD_REQUEST, "too_many"),
            Self::UnknownNamespace(..) => (H::NOT_FOUND, "unknown_namespace"),
            Self::InvertedRange { .. } => (H::BAD_REQUEST, "inverted_range"),
            Self::DuplicateKey(_) => (H::BAD_REQUEST, "duplicate_key"),
            Self::InvalidArgument(_) => (H::BAD_REQUEST, "invalid_argument"),
            Self::NotFound(..) => (H::NOT_FOUND, "not_found"),
            Self::NoSuchRegion(_) => (H::NOT_FOUND, "no_such_region"),
            Self::CrossRegion(..) => (H::CONFLICT, "cross_region"),
            Self::WrongRegion => (H::MISDIRECTED_REQUEST, "wrong_region"),
            Self::StaleEpoch { .. } => (H::MISDIRECTED_REQUEST, "stale_epoch"),
            Self::NoLeader | Self::Timeout | Self::Stopped | Self::Unavailable(_) => {
                (H::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::Storage(_) => (H::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The value of the `flaredb-error` trailer for errors a client handles by refreshing its
    /// region map (see the proto).
    fn routing(&self) -> Option<&'static str> {
        match self {
            Self::CrossRegion(..) => Some("cross-region"),
            Self::WrongRegion => Some("wrong-region"),
            Self::StaleEpoch { .. } => Some("stale-epoch"),
            _ => None,
        }
    }
}

impl From<photon_raft::network::ProposeError> for FlareError {
    fn from(e: photon_raft::network::ProposeError) -> Self {
        use photon_raft::network::ProposeError as P;
        match e {
            P::NoLeader => Self::NoLeader,
            P::Timeout => Self::Timeout,
            P::Stopped => Self::Stopped,
            P::Rejected(why) => Self::InvalidArgument(why),
        }
    }
}

impl From<photon_raft::BoxError> for FlareError {
    fn from(e: photon_raft::BoxError) -> Self {
        Self::Storage(e.to_string())
    }
}

impl axum::response::IntoResponse for FlareError {
    fn into_response(self) -> axum::response::Response {
        let (status, code) = self.http();
        if let Self::Storage(failure) = &self {
            tracing::error!(error = %failure, "storage failure while serving a request");
        }
        photon_runtime::rest::error_response(status, code, &self.to_string())
    }
}

impl From<FlareError> for Status {
    fn from(e: FlareError) -> Self {
        let code = match &e {
            FlareError::EmptyKey
            | FlareError::KeyTooLarge { .. }
            | FlareError::ValueTooLarge { .. }
            | FlareError::TooMany { .. }
            | FlareError::InvertedRange { .. }
            | FlareError::DuplicateKey(_)
            | FlareError::InvalidArgument(_) => Code::InvalidArgument,
            FlareError::UnknownNamespace(..) | FlareError::NotFound(..) | FlareError::NoSuchRegion(_) => Code::NotFound,
            FlareError::CrossRegion(..) | FlareError::WrongRegion | FlareError::StaleEpoch { .. } => {
                Code::FailedPrecondition
            }
            FlareError::NoLeader | FlareError::Stopped | FlareError::Unavailable(_) => Code::Unavailable,
            FlareError::Timeout => Code::DeadlineExceeded,
            FlareError::Storage(_) => Code::Internal,
        };
        if let FlareError::Storage(failure) = &e {
            tracing::error!(error = %failure, "storage failure while serving a request");
        }
        let mut status = Status::new(code, e.to_string());
        if let Some(kind) = e.routing() {
            status.metadata_mut().insert("flaredb-error", tonic::metadata::MetadataValue::from_static(kind));
        }
        status
    }
}
