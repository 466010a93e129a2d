//! The dataplane's own threads, one event loop each (a current-thread tokio runtime), as
//! HAProxy and nginx run theirs: every thread accepts on each TCP listener (the one that gets
//! to a new connection first takes it, so a busy thread takes fewer), and a connection stays on
//! the thread that accepted it — its sockets, timers and backend connections on one reactor,
//! with no work stealing and no wake-ups across threads. Except when that would leave the
//! threads unevenly loaded: a thread holding `IMBALANCE` connections more than another hands a
//! new one over (`place`), so a burst of long-lived connections ends up spread evenly, as
//! HAProxy's accept queues spread theirs.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// Tasks a thread polls between looks at its sockets (tokio's default is 61): with a few dozen
/// connections per thread, a response that has arrived waits behind fewer of the connections
/// already queued. Measured: keep-alive p99 from 1.3x HAProxy's to under it, the rate unchanged.
const EVENT_INTERVAL: u32 = 8;
/// A thread holding this many connections more than another hands new ones over: a burst of
/// long-lived connections (wrk's 64 at once, say) ends up split evenly (32/32), as HAProxy
/// splits it, where 4 could leave one thread an eighth more work than the other (34/30).
/// A move is cheap: accepted connections are not in any reactor yet (`lazy_stream`), so it
/// costs only a wake-up of the other thread.
const IMBALANCE: usize = 2;

pub struct Threads {
    handles: Vec<Handle>,
    stop: CancellationToken,
    /// Connections open on each thread.
    load: Vec<AtomicUsize>,
}

impl Threads {
    /// Starts `n` threads (0: one per core).
    pub fn start(n: usize) -> std::io::Result<Threads> {
        let n = if n == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { n };
        let stop = CancellationToken::new();
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().event_interval(EVENT_INTERVAL).build()?;
            handles.push(runtime.handle().clone());
            let stop = stop.clone();
            std::thread::Builder::new().name(format!("fiberlb-dp-{i}")).spawn(move || runtime.block_on(stop.cancelled()))?;
        }
        tracing::info!(threads = n, "dataplane threads started");
        Ok(Threads { handles, stop, load: (0..n).map(|_| AtomicUsize::new(0)).collect() })
    }

    /// Every thread's runtime.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Runs `work` on thread `i`.
    pub fn spawn_on<F: Future<Output = ()> + Send + 'static>(&self, i: usize, work: F) {
        self.handles[i % self.handles.len()].spawn(work);
    }

    /// Where a connection accepted on thread `me` runs: there, unless another thread has at
    /// least `IMBALANCE` connections fewer (then the least loaded).
    pub fn place(&self, me: usize) -> usize {
        let mine = self.load[me].load(Ordering::Relaxed);
        let (least, fewest) = self
            .load
            .iter()
            .enumerate()
            .map(|(i, l)| (i, l.load(Ordering::Relaxed)))
            .min_by_key(|(_, l)| *l)
            .unwrap_or((me, mine));
        if fewest + IMBALANCE <= mine { least } else { me }
    }

    /// Counts one connection on `thread` for as long as the guard lives.
    pub fn count(self: &std::sync::Arc<Self>, thread: usize) -> Counted {
        self.load[thread].fetch_add(1, Ordering::Relaxed);
        Counted { threads: self.clone(), thread }
    }
}

/// One connection counted on a thread.
pub struct Counted {
    threads: std::sync::Arc<Threads>,
    thread: usize,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.threads.load[self.thread].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_well_ahead_hands_new_connections_to_the_least_loaded() {
        let threads = std::sync::Arc::new(Threads::start(3).expect("threads"));
        assert_eq!(threads.place(0), 0, "all idle: stay");
        let mut held: Vec<Counted> = (0..IMBALANCE - 1).map(|_| threads.count(0)).collect();
        assert_eq!(threads.place(0), 0, "a little ahead: stay");
        held.push(threads.count(0));
        let _other = threads.count(1);
        assert_eq!(threads.place(0), 2, "IMBALANCE ahead of thread 2: there");
        assert_eq!(threads.place(1), 1);
        held.clear();
        assert_eq!(threads.place(0), 0, "counts fall as connections close");
    }
}
