//! The per-node reconciler shape every dataplane shares (STYLE.md, "two shapes", after
//! kube-runtime's controller): desired state arrives (a chainfire watch), the keys it touches
//! are queued, and one idempotent `reconcile(key)` converges each — creating, changing or
//! removing what the node runs for it — by looking at desired and actual state afresh, never at
//! what changed. A failure is retried with a backoff per key; a periodic resync queues every
//! key, which repairs drift nobody announced (a socket closed, a device removed by hand).
//!
//! Keys are reconciled one at a time, in order: what a node runs for one service is a few
//! hundred objects at most, and one at a time means a reconcile never races itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Converged: nothing until the key changes or the next resync.
    Done,
    /// Look again after this long (waiting on something outside, like a process starting).
    After(Duration),
}

pub trait Reconciler: Send + Sync + 'static {
    type Key: Ord + Clone + Debug + Send + Sync + 'static;

    /// Every key there is now, desired or still running (a running object whose desired state
    /// is gone must be reconciled too, to remove it): what a resync queues.
    fn keys(&self) -> Vec<Self::Key>;

    /// Converges one key; safe to call any number of times.
    fn reconcile(&self, key: &Self::Key) -> impl Future<Output = Result<Requeue, String>> + Send;
}

/// Backoff after the n-th failure in a row of one key: 100 ms doubling up to 30 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.saturating_sub(1).min(9))).min(Duration::from_secs(30))
}

/// Keys waiting to be reconciled: now, or not before an instant.
pub struct Queue<K> {
    inner: Mutex<Waiting<K>>,
    notify: Notify,
}

struct Waiting<K> {
    ready: BTreeSet<K>,
    later: BTreeMap<K, Instant>,
}

impl<K: Ord + Clone> Default for Queue<K> {
    fn default() -> Self {
        Self { inner: Mutex::new(Waiting { ready: BTreeSet::new(), later: BTreeMap::new() }), notify: Notify::new() }
    }
}

impl<K: Ord + Clone> Queue<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting<K>> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Reconcile `key` as soon as possible (a change touched it).
    pub fn push(&self, key: K) {
        let mut waiting = self.lock();
        waiting.later.remove(&key);
        waiting.ready.insert(key);
        drop(waiting);
        self.notify.notify_one();
    }

    pub fn push_all(&self, keys: impl IntoIterator<Item = K>) {
        let mut waiting = self.lock();
        for key in keys {
            waiting.later.remove(&key);
            waiting.ready.insert(key);
        }
        drop(waiting);
        self.notify.notify_one();
    }

    /// Reconcile `key` after `delay`, unless something queues it sooner.
    pub fn push_after(&self, key: K, delay: Duration) {
        let mut waiting = self.lock();
        if !waiting.ready.contains(&key) {
            let at = Instant::now() + delay;
            let entry = waiting.later.entry(key).or_insert(at);
            *entry = (*entry).min(at);
        }
        drop(waiting);
        self.notify.notify_one();
    }

    /// The next key due, or how long until one is (`None`: nothing waits).
    fn next(&self) -> Result<K, Option<Duration>> {
        let mut waiting = self.lock();
        let now = Instant::now();
        let due: Vec<K> = waiting.later.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for key in due {
            waiting.later.remove(&key);
            waiting.ready.insert(key);
        }
        if let Some(key) = waiting.ready.pop_first() {
            return Ok(key);
        }
        Err(waiting.later.values().min().map(|at| at.saturating_duration_since(now)))
    }

    pub fn is_idle(&self) -> bool {
        let waiting = self.lock();
        waiting.ready.is_empty() && waiting.later.is_empty()
    }
}

/// Runs `reconciler` over `queue` until `shutdown`, queueing every key each `resync`.
pub async fn run<R: Reconciler>(reconciler: Arc<R>, queue: Arc<Queue<R::Key>>, resync: Duration, shutdown: CancellationToken) {
    let mut failures: BTreeMap<R::Key, u32> = BTreeMap::new();
    let mut next_resync = Instant::now() + resync;
    loop {
        if Instant::now() >= next_resync {
            queue.push_all(reconciler.keys());
            next_resync = Instant::now() + resync;
        }
        let key = match queue.next() {
            Ok(key) => key,
            Err(wait) => {
                let until_resync = next_resync.saturating_duration_since(Instant::now());
                let wait = wait.map_or(until_resync, |w| w.min(until_resync));
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = queue.notify.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
        };
        if shutdown.is_cancelled() {
            return;
        }
        match reconciler.reconcile(&key).await {
            Ok(requeue) => {
                if failures.remove(&key).is_some() {
                    tracing::info!(?key, "reconciled after failing");
                }
                if let Requeue::After(delay) = requeue {
                    queue.push_after(key, delay);
                }
            }
            Err(error) => {
                let n = failures.entry(key.clone()).or_insert(0);
                *n += 1;
                let delay = backoff(*n);
                tracing::warn!(?key, %error, failures = *n, retry_ms = delay.as_millis() as u64, "reconcile failed");
                queue.push_after(key, delay);
            }
        }
    }
}

#[cfg(test)]
mod tests;
