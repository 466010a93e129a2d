//! Concurrent gets and puts of one region travel together. While a batch for a region is on its
//! way, later calls for that region queue, and go as the next `BatchGet` or `BatchPut`: one round
//! trip, one request for the store to decode and answer, one Raft proposal, for all of them (as
//! TiKV's client batches commands). A lone call goes at once, as it would alone; batching only
//! happens when calls are already waiting on each other.
//!
//! Semantics are those of the single calls. A batch is sent after every call in it began, so a
//! batched read is as linearizable as a lone one; a `BatchPut` is atomic, so a batch the store
//! refused took no effect and its calls go alone (the one at fault then gets its own error); a
//! batch whose outcome is unknown answers that to every call in it, as a lone call would. Puts
//! of one key in a batch are written in the order they were made (`BatchPutRequest.in_order`),
//! each getting its own version.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use photon_api::flaredb::v1 as pb;
use tokio::sync::oneshot;

use crate::client::Client;
use crate::Error;

/// Calls per batch at most (stores accept up to 1000), and bytes of values per put batch.
const MAX_CALLS: usize = 256;
const MAX_PUT_BYTES: usize = 1 << 20;

/// One namespace's gets, or puts, for one region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Lane {
    pub namespace: String,
    pub region: u64,
    pub writes: bool,
}

/// What a queued call hears back: its answer, or that the batch cannot speak for it and it
/// must go alone.
pub(crate) enum Outcome<T> {
    Done(Result<T, Error>),
    Alone,
}

pub(crate) struct Get {
    pub key: Vec<u8>,
    pub reply: oneshot::Sender<Outcome<Option<pb::Record>>>,
}

pub(crate) struct Put {
    pub entry: pb::Entry,
    pub reply: oneshot::Sender<Outcome<u64>>,
}

pub(crate) enum Call {
    Get(Get),
    Put(Put),
}

impl Call {
    /// Whether its caller stopped waiting before the call was sent (it is then not sent).
    fn abandoned(&self) -> bool {
        match self {
            Call::Get(get) => get.reply.is_closed(),
            Call::Put(put) => put.reply.is_closed(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Call::Get(get) => get.key.len(),
            Call::Put(put) => put.entry.key.len() + put.entry.value.len(),
        }
    }
}

#[derive(Default)]
struct Queue {
    calls: Vec<Call>,
    in_flight: usize,
}

/// The lanes with calls waiting or batches on their way.
#[derive(Default)]
pub(crate) struct Coalescer {
    lanes: Mutex<HashMap<Lane, Queue>>,
    batches: AtomicU64,
    calls: AtomicU64,
}

/// How much batching happened so far (`Client::coalesced`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalesced {
    /// Requests that carried more than one call.
    pub batches: u64,
    /// The calls they carried.
    pub calls: u64,
}

impl Coalescer {
    /// Queues `call`; answers a batch to send now when fewer than `in_flight` are on their way.
    fn enqueue(&self, lane: &Lane, call: Call, in_flight: usize) -> Option<Vec<Call>> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        // Looked up before inserting: the common case (the lane is queued already) then clones
        // no namespace string.
        if !lanes.contains_key(lane) {
            lanes.insert(lane.clone(), Queue::default());
        }
        let queue = lanes.get_mut(lane)?;
        queue.calls.push(call);
        if queue.in_flight >= in_flight {
            return None;
        }
        queue.in_flight += 1;
        Some(next_batch(&mut queue.calls))
    }

    /// The next batch of `lane` once one came back, or `None` (and one fewer on its way).
    fn after(&self, lane: &Lane) -> Option<Vec<Call>> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let queue = lanes.get_mut(lane)?;
        if queue.calls.is_empty() {
            queue.in_flight -= 1;
            if queue.in_flight == 0 {
                lanes.remove(lane);
            }
            return None;
        }
        Some(next_batch(&mut queue.calls))
    }
}

/// Takes calls from the front of `waiting` for one batch, in order: up to `MAX_CALLS` and
/// `MAX_PUT_BYTES`.
fn next_batch(waiting: &mut Vec<Call>) -> Vec<Call> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut left = Vec::new();
    for call in waiting.drain(..) {
        if call.abandoned() {
            continue;
        }
        let full = batch.len() >= MAX_CALLS || (!batch.is_empty() && bytes + call.bytes() > MAX_PUT_BYTES);
        if full {
            left.push(call);
        } else {
            bytes += call.bytes();
            batch.push(call);
        }
    }
    *waiting = left;
    batch
}

impl Client {
    /// The lane of a call for `key`, when calls are batched and its region is known.
    pub(crate) fn lane(&self, namespace: &str, key: &[u8], writes: bool) -> Option<Lane> {
        if self.config.batch_in_flight == 0 {
            return None;
        }
        let store_key = crate::keys::store_key(namespace, key);
        let (_, region) = self.routes.read().unwrap_or_else(|p| p.into_inner()).route_for(&store_key, false)?;
        Some(Lane { namespace: namespace.to_string(), region: region.id, writes })
    }

    /// Batches of several calls sent so far, and the calls in them.
    pub fn coalesced(&self) -> Coalesced {
        Coalesced {
            batches: self.coalescer.batches.load(Ordering::Relaxed),
            calls: self.coalescer.calls.load(Ordering::Relaxed),
        }
    }

    /// Queues `call` on `lane`, starting a batch when the lane has room for one.
    pub(crate) fn submit(&self, lane: Lane, call: Call) {
        if let Some(batch) = self.coalescer.enqueue(&lane, call, self.config.batch_in_flight) {
            let client = self.clone();
            tokio::spawn(async move { client.drive(lane, batch).await });
        }
    }

    /// Sends batches of `lane` until none is waiting.
    async fn drive(self, lane: Lane, mut batch: Vec<Call>) {
        loop {
            self.send(&lane.namespace, batch).await;
            match self.coalescer.after(&lane) {
                Some(next) => batch = next,
                None => return,
            }
        }
    }

    /// One batch: a lone call as itself, several as one `BatchGet` or `BatchPut`.
    async fn send(&self, namespace: &str, batch: Vec<Call>) {
        if batch.len() > 1 {
            self.coalescer.batches.fetch_add(1, Ordering::Relaxed);
            self.coalescer.calls.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        let (mut gets, mut puts) = (Vec::new(), Vec::new());
        for call in batch {
            match call {
                Call::Get(get) => gets.push(get),
                Call::Put(put) => puts.push(put),
            }
        }
        if !gets.is_empty() {
            self.send_gets(namespace, gets).await;
        }
        if !puts.is_empty() {
            self.send_puts(namespace, puts).await;
        }
    }

    async fn send_gets(&self, namespace: &str, mut gets: Vec<Get>) {
        if gets.len() == 1 {
            let get = gets.remove(0);
            let _ = get.reply.send(Outcome::Done(self.get_alone(namespace, &get.key).await));
            return;
        }
        let keys: Vec<Vec<u8>> = gets.iter().map(|g| g.key.clone()).collect();
        match self.batch_get_one_region(namespace, keys).await {
            // The records that exist, in request order (a key asked twice answered twice).
            Ok(records) => {
                let mut records = records.into_iter().peekable();
                for get in gets {
                    let found = records.next_if(|r| r.key == get.key);
                    let _ = get.reply.send(Outcome::Done(Ok(found)));
                }
            }
            // Reads take no effect: whatever went wrong, each call tries again alone.
            Err(_) => {
                for get in gets {
                    let _ = get.reply.send(Outcome::Alone);
                }
            }
        }
    }

    async fn send_puts(&self, namespace: &str, mut puts: Vec<Put>) {
        if puts.len() == 1 {
            let put = puts.remove(0);
            let Put { entry, reply } = put;
            let answer = self.put_alone(namespace, entry.key, entry.value, entry.ttl_seconds).await;
            let _ = reply.send(Outcome::Done(answer));
            return;
        }
        let (entries, replies): (Vec<_>, Vec<_>) = puts.into_iter().map(|p| (p.entry, p.reply)).unzip();
        let count = entries.len();
        // Puts of one key go in the order they were made, each with its version.
        match self.batch_put_entries(namespace, entries, true).await {
            Ok(versions) if versions.len() == count => {
                for (reply, version) in replies.into_iter().zip(versions) {
                    let _ = reply.send(Outcome::Done(Ok(version)));
                }
            }
            Ok(versions) => {
                let why = format!("the store answered {} versions for a batch of {count} puts", versions.len());
                for reply in replies {
                    let _ = reply.send(Outcome::Done(Err(Error::Unknown(why.clone()))));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(match shared(&e) {
                        Some(e) => Outcome::Done(Err(e)),
                        None => Outcome::Alone,
                    });
                }
            }
        }
    }
}

/// A failed batch put's error for each of its calls, when it speaks for them: an unknown
/// outcome, or retries that ran out. `None`: the store refused the batch as a whole (nothing
/// took effect), so each call must learn its own answer alone.
fn shared(e: &Error) -> Option<Error> {
    match e {
        Error::Unknown(why) => Some(Error::Unknown(why.clone())),
        Error::Unavailable { waited_ms, last } => {
            Some(Error::Unavailable { waited_ms: *waited_ms, last: last.clone() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value_len: usize) -> Call {
        let (reply, answer) = oneshot::channel();
        // Kept waiting: an abandoned call is dropped from its batch.
        std::mem::forget(answer);
        let entry = pb::Entry { key: key.as_bytes().to_vec(), value: vec![0; value_len], ttl_seconds: 0 };
        Call::Put(Put { entry, reply })
    }

    fn keys(calls: &[Call]) -> Vec<String> {
        calls
            .iter()
            .map(|c| match c {
                Call::Put(p) => String::from_utf8_lossy(&p.entry.key).into_owned(),
                Call::Get(g) => String::from_utf8_lossy(&g.key).into_owned(),
            })
            .collect()
    }

    #[test]
    fn batches_keep_order_and_stay_bounded() {
        let mut waiting = vec![put("a", 1), put("b", 1), put("a", 1), put("c", 1)];
        let batch = next_batch(&mut waiting);
        assert_eq!(keys(&batch), ["a", "b", "a", "c"], "puts of one key go together, in order");
        assert!(waiting.is_empty());

        let mut waiting: Vec<Call> = (0..MAX_CALLS + 5).map(|i| put(&format!("k{i}"), 1)).collect();
        assert_eq!(next_batch(&mut waiting).len(), MAX_CALLS);
        assert_eq!(waiting.len(), 5);

        let mut waiting = vec![put("x", MAX_PUT_BYTES - 10), put("y", 100), put("z", 1)];
        assert_eq!(keys(&next_batch(&mut waiting)), ["x", "z"]);
        assert_eq!(keys(&waiting), ["y"]);
        let mut alone = vec![put("huge", 2 * MAX_PUT_BYTES)];
        assert_eq!(next_batch(&mut alone).len(), 1, "an oversized call still goes, alone");

        let (reply, answer) = oneshot::channel();
        drop(answer);
        let entry = pb::Entry { key: b"gone".to_vec(), value: Vec::new(), ttl_seconds: 0 };
        let mut waiting = vec![Call::Put(Put { entry, reply }), put("kept", 1)];
        assert_eq!(keys(&next_batch(&mut waiting)), ["kept"], "a call nobody waits for is not sent");
    }

    #[test]
    fn lanes_send_one_batch_at_a_time_and_empty_out() {
        let coalescer = Coalescer::default();
        let lane = Lane { namespace: "default".into(), region: 1, writes: true };
        assert_eq!(coalescer.enqueue(&lane, put("a", 1), 1).map(|b| b.len()), Some(1), "a lone call goes at once");
        assert!(coalescer.enqueue(&lane, put("b", 1), 1).is_none(), "one batch is on its way");
        assert!(coalescer.enqueue(&lane, put("c", 1), 1).is_none());
        assert_eq!(coalescer.after(&lane).map(|b| keys(&b)), Some(vec!["b".into(), "c".into()]));
        assert!(coalescer.after(&lane).is_none());
        assert!(coalescer.lanes.lock().unwrap().is_empty(), "an idle lane is forgotten");
    }
}
