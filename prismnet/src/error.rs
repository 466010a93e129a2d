//! PrismNET's own failures (the API's are photon-resource's `ResourceError`): what the node's
//! dataplane could not do to the kernel, or the registrar to FlashDNS, named by what it was
//! doing. A reconcile that fails is retried with a backoff and logged with this message.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum PrismnetError {
    /// A netlink request the kernel refused (`errno` when it said which).
    #[error("{what}: {message}")]
    Netlink { what: String, message: String, errno: Option<i32> },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// Ports of a VPC that could not be plugged in (the rest of the VPC converged).
    #[error("{0}")]
    Ports(String),
    /// nft refused a rule set (its message names the line at fault).
    #[error("{what}: {message}")]
    Nft { what: String, message: String },
    /// FlashDNS (or IAM, for the token to call it) refused or did not answer.
    #[error("FlashDNS, {what}: {message}")]
    Dns { what: String, message: String },
}

impl PrismnetError {
    pub fn netlink(what: impl Into<String>, error: rtnetlink::Error) -> Self {
        let errno = match &error {
            rtnetlink::Error::NetlinkError(message) => message.code.map(|c| -c.get()),
            _ => None,
        };
        Self::Netlink { what: what.into(), message: error.to_string(), errno }
    }

    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io { what: what.into(), source }
    }

    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Netlink { errno, .. } => *errno,
            Self::Io { source, .. } => source.raw_os_error(),
            Self::Nft { .. } | Self::Ports(_) | Self::Dns { .. } => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, PrismnetError>;
