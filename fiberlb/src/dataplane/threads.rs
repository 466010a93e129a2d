//! The dataplane's own threads, one event loop each (a current-thread tokio runtime), as
//! HAProxy and nginx run theirs: every thread accepts on each TCP listener (the one that gets
//! to a new connection first takes it, so a busy thread takes fewer), and a connection stays on
//! the thread that accepted it — its sockets, timers and backend connections on one reactor,
//! with no work stealing and no wake-ups across threads.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

pub struct Threads {
    handles: Vec<Handle>,
    stop: CancellationToken,
    next: AtomicUsize,
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
        Ok(Threads { handles, stop, next: AtomicUsize::new(0) })
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
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
