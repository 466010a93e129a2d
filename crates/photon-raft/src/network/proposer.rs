//! Proposing and reading through whichever member leads: a member proposes locally when it
//! leads and forwards to the leader otherwise; a linearizable read on a follower asks the
//! leader for a read index and waits until it has applied that far.

use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError as OpenRaftError};
use openraft::Raft;
use tokio::sync::mpsc;

use super::batcher::Batcher;
use super::election_pause;
use super::forward::ForwardFailure;
use super::read_batcher::ReadBatcher;
use super::PeerNetwork;
use crate::{App, TypeConfig};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("no leader")]
    NoLeader,
    #[error("timed out")]
    Timeout,
    #[error("stopped")]
    Stopped,
    #[error("{0}")]
    Rejected(String),
}

pub struct Proposer<A: App> {
    raft: Raft<TypeConfig<A>>,
    batcher: Batcher<A>,
    reads: ReadBatcher<A>,
    network: PeerNetwork<A>,
    timeout: Duration,
    /// Keeps the group's election back-off enforced while any clone lives.
    _pause: mpsc::Sender<()>,
}

impl<A: App> Clone for Proposer<A> {
    fn clone(&self) -> Self {
        Self {
            raft: self.raft.clone(),
            batcher: self.batcher.clone(),
            reads: self.reads.clone(),
            network: self.network.for_group(self.network.group()),
            timeout: self.timeout,
            _pause: self._pause.clone(),
        }
    }
}

/// Pause between attempts while a leader is being elected.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(50);

impl<A: App> Proposer<A> {
    /// `timeout` bounds every call, including waiting out an election. Starts the group's
    /// write and read batchers and its election back-off (see `election_pause`), so call it
    /// once per group (and clone).
    /// `lease_reads`: a leader holding a lease answers linearizable reads without a quorum
    /// round (see `lease`); a campaign elsewhere must then call [`Proposer::suspend_lease`] on
    /// the leader first.
    pub fn new(raft: Raft<TypeConfig<A>>, network: PeerNetwork<A>, timeout: Duration, lease_reads: bool) -> Self {
        let batcher = Batcher::spawn(raft.clone(), network.for_group(network.group()), timeout);
        let reads = ReadBatcher::spawn(raft.clone(), network.for_group(network.group()), timeout, lease_reads);
        let _pause = election_pause::enforce(raft.clone(), network.election_pause());
        Self { raft, batcher, reads, network, timeout, _pause }
    }

    /// Stops this member's lease reads long enough for another member's forced election to
    /// settle: twice the longest election timeout. Reads keep working through quorum rounds.
    pub fn suspend_lease(&self) -> Duration {
        let period = Duration::from_millis(self.raft.config().election_timeout_max * 2);
        self.network.lease().suspend(period);
        period
    }

    /// Proposes `request` and returns what applying it answered. Concurrent writes share a
    /// log entry (see `batcher`).
    pub async fn write(&self, request: A::Request) -> Result<A::Response, ProposeError> {
        self.batcher.write(request).await
    }

    /// Makes a membership change through the leader.
    pub async fn change_membership(
        &self,
        change: openraft::ChangeMembers<crate::NodeId, openraft::BasicNode>,
    ) -> Result<(), ProposeError> {
        tokio::time::timeout(self.timeout, self.change_until_done(change)).await.map_err(|_| ProposeError::Timeout)?
    }

    async fn change_until_done(
        &self,
        change: openraft::ChangeMembers<crate::NodeId, openraft::BasicNode>,
    ) -> Result<(), ProposeError> {
        loop {
            match self.raft.change_membership(change.clone(), false).await {
                Ok(_) => return Ok(()),
                Err(OpenRaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let (Some(leader), Some(node)) = (f.leader_id, f.leader_node) {
                        match self.network.change_membership(leader, &node.addr, &change, self.timeout).await {
                            Ok(()) => return Ok(()),
                            // Not made there: safe to try again once leadership settles.
                            Err(ForwardFailure::NotLeader { .. } | ForwardFailure::Unreachable(_)) => {}
                            Err(ForwardFailure::Rejected(why)) => return Err(ProposeError::Rejected(why)),
                            Err(ForwardFailure::Stopped | ForwardFailure::NoQuorum) => {
                                return Err(ProposeError::NoLeader)
                            }
                            Err(ForwardFailure::Transport(_)) => return Err(ProposeError::Timeout),
                        }
                    }
                }
                Err(OpenRaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
                    return Err(ProposeError::Rejected(e.to_string()))
                }
                Err(OpenRaftError::Fatal(_)) => return Err(ProposeError::Stopped),
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Returns once a read of this member's state is linearizable. Concurrent reads share a
    /// leadership check (see `read_batcher`).
    pub async fn linearize(&self) -> Result<(), ProposeError> {
        self.reads.linearize().await
    }
}
