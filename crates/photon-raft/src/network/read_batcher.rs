//! Group ReadIndex: concurrent linearizable reads of one group share one leadership check.
//!
//! Why: each check costs the leader a heartbeat round to a quorum (or, on a follower, a
//! ReadIndex call to the leader and back). A read joins the next round that starts after it
//! arrived — never one already in flight, whose read index could predate a write the reader
//! saw acknowledged — so sharing rounds keeps every read linearizable. A leader holding a
//! lease (when the group enables lease reads; see `lease`) needs no round at all.

use std::sync::atomic::{AtomicUsize, Ordering};
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
pub(crate) struct ReadBatcher<A: App> {
    tx: mpsc::UnboundedSender<Waiter>,
    /// Reads queued for or inside a round.
    busy: Arc<AtomicUsize>,
    /// With lease reads: the route a read alone checks its lease on itself.
    alone: Option<Arc<Route<A>>>,
}

impl<A: App> Clone for ReadBatcher<A> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), busy: self.busy.clone(), alone: self.alone.clone() }
    }
}

struct Route<A: App> {
    raft: Raft<TypeConfig<A>>,
    network: PeerNetwork<A>,
    timeout: Duration,
    /// The group's lease, when leases may stand in for a round.
    lease: Option<Arc<LeaseClock>>,
}

/// Counts a read as busy until it has its answer (or its caller gave up).
struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<A: App> ReadBatcher<A> {
    /// Starts the round task on the current Tokio runtime; it ends when every clone is dropped.
    pub(crate) fn spawn(
        raft: Raft<TypeConfig<A>>,
        network: PeerNetwork<A>,
        timeout: Duration,
        lease_reads: bool,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let lease = lease_reads.then(|| network.lease());
        let route = Arc::new(Route { raft, network, timeout, lease });
        let alone = route.lease.is_some().then(|| route.clone());
        tokio::spawn(run(route, rx));
        Self { tx, busy: Arc::default(), alone }
    }

    /// Returns once a read of this member's state is linearizable.
    pub(crate) async fn linearize(&self) -> Result<(), ProposeError> {
        // A read with no other in sight checks the lease itself: through the round task it
        // would cross three more threads (the task, the round, the answer) for a check that
        // needs no network round, a third of a lone read's time on loopback.
        if let Some(route) = &self.alone {
            if self.busy.load(Ordering::Acquire) == 0 {
                if let Some(done) = lease_read(route).await {
                    return done;
                }
            }
        }
        self.busy.fetch_add(1, Ordering::AcqRel);
        let _busy = Busy(&self.busy);
        let (waiter, answer) = oneshot::channel();
        self.tx.send(waiter).map_err(|_| ProposeError::Stopped)?;
        answer.await.map_err(|_| ProposeError::Stopped)?
    }
}

/// A read under this leader's lease: `None` when it holds none (the read needs a round).
async fn lease_read<A: App>(route: &Route<A>) -> Option<Result<(), ProposeError>> {
    let lease = route.lease.clone()?;
    let index = lease_read_index(&route.raft, lease).await?;
    let applied = route.raft.wait(Some(route.timeout)).applied_index_at_least(Some(index), "lease read").await;
    Some(applied.map(|_| ()).map_err(|_| ProposeError::Timeout))
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
    if let Some(done) = lease_read(route).await {
        return done;
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
