//! Leader forwarding, shared by every application: writes proposed on a follower and
//! linearizable reads served by a follower both go through the current leader.

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// Why the leader could not do what a follower forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ForwardFailure {
    /// The receiver is not the leader (any more); it names the leader it knows of.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<(NodeId, String)> },
    /// The leader could not reach a quorum.
    #[error("the leader cannot reach a quorum")]
    NoQuorum,
    /// The leader is shutting down.
    #[error("the leader is stopping")]
    Stopped,
    /// The leader refused the request itself (e.g. an invalid membership change).
    #[error("{0}")]
    Rejected(String),
    /// The leader could not be reached at all: the message was provably not delivered, so it
    /// is safe to try again (once a leader is known).
    #[error("leader unreachable: {0}")]
    Unreachable(String),
    /// The message may or may not have arrived (reset, malformed reply).
    #[error("forwarding failed: {0}")]
    Transport(String),
}
