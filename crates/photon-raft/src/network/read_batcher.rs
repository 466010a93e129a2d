//! Group ReadIndex: concurrent linearizable reads of one group share one leadership check.
//!
//! Why: each check costs the leader a heartbeat round to a quorum (or, on a follower, a
//! ReadIndex call to the leader and back). A read joins the next round that starts after it
//! arrived — never one already in flight, whose read index could predate a write the reader
//! saw acknowledged — so sharing rounds keeps every read linearizable. A leader holding a
//! lease (when the group enables lease reads; see `lease`) needs no round at all.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError as OpenRaftError};
use openraft::Raft;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::forward::ForwardFailure;
use super::lease::{lease_read_index, LeaseClock};
use super::proposer::{ProposeError, RETRY_PAUSE};
use super::PeerNetwork;
use crate::{App, TypeConfig};

/// Rounds in flight: two let a round start while the previous one waits on the network.
const MAX_IN_FLIGHT: usize = 2;

type Waiter = oneshot::Sender<Result<(), ProposeError>>;

/// Hands linearizable reads of one group to the round task. Cheap to clone.
pub(crate) struct ReadBatcher {
    tx: mpsc::UnboundedSender<Waiter>,
}

impl Clone for ReadBatcher {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

struct Route<A: App> {
    raft: Raft<TypeConfig<A>>,
    network: PeerNetwork<A>,
    timeout: Duration,
    /// The group's lease, when leases may stand in for a round.
    lease: Option<Arc<LeaseClock>>,
}

impl ReadBatcher {
    /// Starts the round task on the current Tokio runtime; it ends when every clone is dropped.
    pub(crate) fn spawn<A: App>(
        raft: Raft<TypeConfig<A>>,
        network: PeerNetwork<A>,
        timeout: Duration,
        lease_reads: bool,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let lease = lease_reads.then(|| network.lease());
        tokio::spawn(run(Arc::new(Route { raft, network, timeout, lease }), rx));
        Self { tx }
    }

    /// Returns once a read of this member's state is linearizable.
    pub(crate) async fn linearize(&self) -> Result<(), ProposeError> {
        let (waiter, answer) = oneshot::channel();
        self.tx.send(waiter).map_err(|_| ProposeError::Stopped)?;
        answer.await.map_err(|_| ProposeError::Stopped)?
    }
}

async fn run<A: App>(route: Arc<Route<A>>, mut rx: mpsc::UnboundedReceiver<Waiter>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        let Ok(slot) = in_flight.clone().acquire_owned().await else { return };
        let mut waiters = vec![first];
        waiters.extend(std::iter::from_fn(|| rx.try_recv().ok()));
        let route = route.clone();
        tokio::spawn(async move {
            let outcome = tokio::time::timeout(route.timeout, linearize_until_done(&route))
                .await
                .unwrap_or(Err(ProposeError::Timeout));
            drop(slot);
            for waiter in waiters {
                let _ = waiter.send(outcome.clone());
            }
        });
    }
}

/// One leadership check: on the leader directly, on a follower through the leader's read
/// index (then waiting until this member has applied that far); retried while a leader is
/// being elected.
async fn linearize_until_done<A: App>(route: &Route<A>) -> Result<(), ProposeError> {
    if let Some(lease) = &route.lease {
        if let Some(index) = lease_read_index(&route.raft, lease.clone()).await {
            return route
                .raft
                .wait(Some(route.timeout))
                .applied_index_at_least(Some(index), "lease read")
                .await
                .map(|_| ())
                .map_err(|_| ProposeError::Timeout);
        }
    }
    loop {
        match route.raft.ensure_linearizable().await {
            Ok(_) => return Ok(()),
            Err(OpenRaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                if let (Some(leader), Some(node)) = (f.leader_id, f.leader_node) {
                    match route.network.read_index(leader, &node.addr, route.timeout).await {
                        Ok(index) => {
                            route
                                .raft
                                .wait(Some(route.timeout))
                                .applied_index_at_least(Some(index), "linearizable read")
                                .await
                                .map_err(|_| ProposeError::Timeout)?;
                            return Ok(());
                        }
                        // Not confirmed yet (no leader, or the leader's quorum was slow to
                        // answer): nothing was changed, so check again until the deadline.
                        Err(
                            ForwardFailure::NotLeader { .. }
                            | ForwardFailure::Unreachable(_)
                            | ForwardFailure::NoQuorum,
                        ) => {}
                        Err(ForwardFailure::Stopped) => return Err(ProposeError::NoLeader),
                        Err(ForwardFailure::Rejected(why)) => return Err(ProposeError::Rejected(why)),
                        Err(ForwardFailure::Transport(_)) => return Err(ProposeError::Timeout),
                    }
                }
            }
            // A quorum did not confirm in time (a busy machine, or cut off from the majority): a
            // read changes nothing, so try again until the round's deadline says otherwise.
            Err(OpenRaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {}
            Err(OpenRaftError::Fatal(_)) => return Err(ProposeError::Stopped),
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
