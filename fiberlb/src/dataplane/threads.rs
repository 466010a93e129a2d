//! The dataplane's own threads, one event loop each (a current-thread tokio runtime), as
//! HAProxy and nginx run theirs: every thread accepts on each TCP listener (the one that gets
//! to a new connection first takes it, so a busy thread takes fewer), and a connection stays on
//! the thread that accepted it — its sockets, timers and backend connections on one reactor,
//! with no work stealing and no wake-ups across threads. Except when that would leave the
//! threads unevenly loaded: a thread holding two connections more than another hands a new one
//! over (`place`), so a burst of long-lived connections ends up spread evenly, as HAProxy's
//! accept queues spread theirs.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

pub struct Threads {
    handles: Vec<Handle>,
    stop: CancellationToken,
    next: AtomicUsize,
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
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let stop = stop.clone();
            std::thread::Builder::new().name(format!("fiberlb-dp-{i}")).spawn(move || runtime.block_on(stop.cancelled()))?;
        }
        tracing::info!(threads = n, "dataplane threads started");
        Ok(Threads { handles, stop, next: AtomicUsize::new(0), load: (0..n).map(|_| AtomicUsize::new(0)).collect() })
    }

    /// Every thread's runtime.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Runs `work` on the next thread in turn.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, work: F) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(work);
    }

    /// Runs `work` on thread `i`.
    pub fn spawn_on<F: Future<Output = ()> + Send + 'static>(&self, i: usize, work: F) {
        self.handles[i % self.handles.len()].spawn(work);
    }
}

impl Threads {
    /// Where a connection accepted on thread `me` runs: there, unless another thread has at
    /// least two connections fewer (then the least loaded).
    pub fn place(&self, me: usize) -> usize {
        let mine = self.load[me].load(Ordering::Relaxed);
        let (least, fewest) = self
            .load
            .iter()
            .enumerate()
            .map(|(i, l)| (i, l.load(Ordering::Relaxed)))
            .min_by_key(|(_, l)| *l)
            .unwrap_or((me, mine));
        if fewest + 2 <= mine { least } else { me }
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
    fn a_thread_two_connections_ahead_hands_new_ones_to_the_least_loaded() {
        let threads = std::sync::Arc::new(Threads::start(3).expect("threads"));
        assert_eq!(threads.place(0), 0, "all idle: stay");
        let a = threads.count(0);
        assert_eq!(threads.place(0), 0, "one ahead: stay");
        let b = threads.count(0);
        let _c = threads.count(1);
        assert_eq!(threads.place(0), 2, "two ahead of thread 2: there");
        assert_eq!(threads.place(1), 1);
        drop((a, b));
        assert_eq!(threads.place(0), 0, "counts fall as connections close");
    }
}
