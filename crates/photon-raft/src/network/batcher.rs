//! Group commit for proposals: concurrent writes to one Raft group travel as one log entry.
//!
//! Why: openraft 0.9's core appends each client write and waits for its fsync before taking
//! the next one, so a hundred concurrent writes cost a hundred fsyncs in a row. The batcher
//! queues writes while earlier batches are in flight and proposes everything queued as one
//! entry ([`Batch`]); a lone write goes out at once, so an idle group adds no latency.

use std::sync::Arc;

use openraft::error::{ClientWriteError, Fatal, RaftError as OpenRaftError};
use openraft::{BasicNode, Raft};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::{App, Batch, NodeId, TypeConfig};

/// Why openraft did not apply a write (the whole batch shares the answer).
pub type WriteError = OpenRaftError<NodeId, ClientWriteError<NodeId, BasicNode>>;

/// Most commands in one entry; bounds the entry size and the apply time of one entry.
const MAX_BATCH: usize = 256;
/// Batches proposed but not yet applied. Two let one batch's append overlap the previous
/// batch's apply; more would only split the queue into smaller batches.
const MAX_IN_FLIGHT: usize = 2;

struct Pending<A: App> {
    request: A::Request,
    reply: oneshot::Sender<Result<A::Response, WriteError>>,
}

/// Submits writes to one group's Raft through the batching task. Cheap to clone.
pub struct Batcher<A: App> {
    tx: mpsc::UnboundedSender<Pending<A>>,
}

impl<A: App> Clone for Batcher<A> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<A: App> Batcher<A> {
    /// Starts the batching task on the current Tokio runtime; it ends when every clone is dropped.
    pub fn spawn(raft: Raft<TypeConfig<A>>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx));
        Self { tx }
    }

    /// Proposes `request` (with whatever else is queued) and returns what applying it answered.
    pub async fn write(&self, request: A::Request) -> Result<A::Response, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Pending { request, reply }).map_err(|_| OpenRaftError::Fatal(Fatal::Stopped))?;
        answer.await.map_err(|_| OpenRaftError::Fatal(Fatal::Stopped))?
    }
}

async fn run<A: App>(raft: Raft<TypeConfig<A>>, mut rx: mpsc::UnboundedReceiver<Pending<A>>) {
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
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(slot);
        });
    }
}

async fn propose<A: App>(raft: &Raft<TypeConfig<A>>, batch: Vec<Pending<A>>) {
    let (requests, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.request, p.reply)).unzip();
    match raft.client_write(Batch(requests)).await {
        // The state machine answers each command in order; a missing answer drops the reply,
        // which the waiting caller sees as a stopped node rather than a wrong answer.
        Ok(response) => {
            for (reply, answer) in replies.into_iter().zip(response.data) {
                let _ = reply.send(Ok(answer));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
