//! The client's error type.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no FlareDB endpoint given")]
    NoEndpoints,
    #[error("invalid endpoint {url}: {reason}")]
    Endpoint { url: String, reason: String },
    /// The store refused the request (bad input, unknown namespace, cross-region batch...).
    #[error("{}", .0.message())]
    Refused(tonic::Status),
    /// Retries ran out while the cluster was unavailable; the request did not take effect.
    #[error("FlareDB unavailable after retrying for {waited_ms} ms: {last}")]
    Unavailable { waited_ms: u128, last: String },
    /// The request was sent and no answer came: it may or may not have taken effect.
    #[error("no answer (the request may or may not have taken effect): {0}")]
    Unknown(String),
}

impl Error {
    /// The gRPC status of a refusal.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::Refused(status) => Some(status),
            _ => None,
        }
    }
}
