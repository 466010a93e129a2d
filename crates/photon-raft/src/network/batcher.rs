//! Group commit for proposals: concurrent writes to one Raft group travel as one log entry.
//!
//! Why: openraft 0.9's core appends each client write and waits for its fsync before taking
//! the next one, so a hundred concurrent writes cost a hundred fsyncs in a row. The batcher
//! queues writes while earlier batches are in flight and proposes everything queued as one
//! entry ([`Batch`]); a lone write goes out at once, so an idle group adds no latency. On a
//! follower the whole batch is forwarded to the leader in one message.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError as OpenRaftError};
use openraft::Raft;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::forward::ForwardFailure;
use super::proposer::{ProposeError, RETRY_PAUSE};
use super::PeerNetwork;
use crate::{App, Batch, NodeId, TypeConfig};

/// Most commands in one entry; bounds the entry size and the apply time of one entry.
const MAX_BATCH: usize = 256;
/// Batches proposed but not yet answered. One: writes that arrive while a batch is in flight
/// wait for it and go together in the next. Each batch costs a log append, an AppendEntries per
/// follower, and an fsync and an apply on every replica whatever its size, so on a busy machine the
/// fewest, largest batches do the most writes: flaredb workload A on three stores (2 cores)
/// spent 265 µs of server CPU per operation with two in flight, 234 with one, 294 with four.
const MAX_IN_FLIGHT: usize = 1;

struct Pending<A: App> {
    request: A::Request,
    reply: oneshot::Sender<Result<A::Response, ProposeError>>,
}

/// Submits writes to one group through the batching task. Cheap to clone.
pub(crate) struct Batcher<A: App> {
    tx: mpsc::UnboundedSender<Pending<A>>,
}

impl<A: App> Clone for Batcher<A> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

/// What a batch is proposed through: the local Raft, or the leader it names.
struct Route<A: App> {
    raft: Raft<TypeConfig<A>>,
    network: PeerNetwork<A>,
    timeout: Duration,
}

impl<A: App> Batcher<A> {
    /// Starts the batching task on the current Tokio runtime; it ends when every clone is
    /// dropped. `timeout` bounds each batch, including waiting out an election.
    pub(crate) fn spawn(raft: Raft<TypeConfig<A>>, network: PeerNetwork<A>, timeout: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(Arc::new(Route { raft, network, timeout }), rx));
        Self { tx }
    }

    /// Proposes `request` (with whatever else is queued) and returns what applying it answered.
    pub(crate) async fn write(&self, request: A::Request) -> Result<A::Response, ProposeError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Pending { request, reply }).map_err(|_| ProposeError::Stopped)?;
        answer.await.map_err(|_| ProposeError::Stopped)?
    }
}

async fn run<A: App>(route: Arc<Route<A>>, mut rx: mpsc::UnboundedReceiver<Pending<A>>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(first) = rx.recv().await {
        // Waiting for a slot first is what lets the queue grow into a batch.
        let Ok(slot) = in_flight.clone().acquire_owned().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let route = route.clone();
        tokio::spawn(async move {
            propose(&route, batch).await;
            drop(slot);
        });
    }
}

/// Proposes `batch` until it is answered, fails, or `route.timeout` passes, and tells each
/// caller. Before every attempt (locally, or forwarded to the leader) the writes whose callers
/// have given up are dropped: a write is never proposed after its client stopped waiting. (An
/// isolated leader answers a stuck write with "forward to the new leader" only once it heals;
/// forwarding it then would land a write its client already saw fail.)
async fn propose<A: App>(route: &Route<A>, mut batch: Vec<Pending<A>>) {
    let deadline = tokio::time::Instant::now() + route.timeout;
    let mut leader: Option<(NodeId, String)> = None;
    let outcome = loop {
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            return;
        }
        let next = match &leader {
            None => tokio::time::timeout_at(deadline, propose_here(route, &batch)).await,
            Some((id, addr)) => tokio::time::timeout_at(deadline, forward(route, &batch, *id, addr)).await,
        };
        match next {
            Err(_) => break Err(ProposeError::Timeout),
            Ok(Next::Done(outcome)) => break outcome,
            Ok(Next::Forward(id, addr)) => leader = Some((id, addr)),
            Ok(Next::Retry) => {
                leader = None;
                if tokio::time::Instant::now() + RETRY_PAUSE >= deadline {
                    break Err(ProposeError::Timeout);
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    };
    match outcome {
        // The state machine answers each command in order; a missing answer drops the reply,
        // which the waiting caller sees as a stopped node rather than a wrong answer.
        Ok(answers) => {
            for (pending, answer) in batch.into_iter().zip(answers) {
                let _ = pending.reply.send(Ok(answer));
            }
        }
        Err(e) => {
            for pending in batch {
                let _ = pending.reply.send(Err(e.clone()));
            }
        }
    }
}

/// What to do after one attempt.
enum Next<R> {
    Done(Result<Vec<R>, ProposeError>),
    /// Not proposed: this leader (id, peer address) should take it.
    Forward(NodeId, String),
    /// Not proposed, and no leader known yet: try again shortly.
    Retry,
}

fn requests<A: App>(batch: &[Pending<A>]) -> Vec<A::Request> {
    batch.iter().map(|p| p.request.clone()).collect()
}

/// Proposes the batch as one entry of the local Raft.
async fn propose_here<A: App>(route: &Route<A>, batch: &[Pending<A>]) -> Next<A::Response> {
    match route.raft.client_write(Batch(requests(batch))).await {
        Ok(response) => Next::Done(Ok(response.data)),
        Err(OpenRaftError::APIError(ClientWriteError::ForwardToLeader(f))) => match f.leader_id.zip(f.leader_node) {
            Some((id, node)) => Next::Forward(id, node.addr),
            None => Next::Retry,
        },
        Err(OpenRaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Next::Done(Err(ProposeError::Rejected(e.to_string())))
        }
        Err(OpenRaftError::Fatal(_)) => Next::Done(Err(ProposeError::Stopped)),
    }
}

/// Has the leader propose the batch as one entry.
async fn forward<A: App>(route: &Route<A>, batch: &[Pending<A>], leader: NodeId, addr: &str) -> Next<A::Response> {
    match route.network.forward_write(leader, addr, &requests(batch), route.timeout).await {
        Ok(responses) => Next::Done(Ok(responses)),
        // Not proposed there: safe to try again once leadership settles.
        Err(ForwardFailure::NotLeader { .. } | ForwardFailure::Unreachable(_)) => Next::Retry,
        Err(ForwardFailure::Stopped | ForwardFailure::NoQuorum) => Next::Done(Err(ProposeError::NoLeader)),
        Err(ForwardFailure::Rejected(why)) => Next::Done(Err(ProposeError::Rejected(why))),
        // Perhaps applied, perhaps not: the client decides, as with etcd.
        Err(ForwardFailure::Transport(_)) => Next::Done(Err(ProposeError::Timeout)),
    }
}
