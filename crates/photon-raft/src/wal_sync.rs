//! Group commit for Raft log appends: appends write to RocksDB without fsync and queue their
//! completion here; one thread per database fsyncs the WAL once for everything queued behind it
//! and then completes those appends in order.
//!
//! Why: openraft 0.9 runs storage commands inline in its core task, so an append that fsyncs
//! before returning serialises every client write behind one fsync each. openraft's
//! `LogFlushed` callback lets `append` return as soon as the entries are readable, and report
//! durability later; a hundred concurrent writes then share one fsync.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Weak};
use std::thread;

use rocksdb::DB;

/// What to run once the WAL holding an append is on disk (or failed to get there).
pub(crate) type Completion = Box<dyn FnOnce(std::io::Result<()>) + Send>;

/// Handle to the WAL sync thread of one database; cloned into every group's log store.
#[derive(Clone)]
pub(crate) struct WalSync {
    tx: Sender<Completion>,
}

impl WalSync {
    /// Starts the sync thread. It holds the database weakly, so dropping the last `Storage`
    /// closes RocksDB (and frees its lock) without waiting for this thread.
    pub(crate) fn start(db: &Arc<DB>) -> std::io::Result<Self> {
        let (tx, rx) = channel();
        let db = Arc::downgrade(db);
        thread::Builder::new().name("raft-wal-sync".into()).spawn(move || run(db, rx))?;
        Ok(Self { tx })
    }

    /// Runs `done` after every write issued before this call is durable.
    pub(crate) fn after_sync(&self, done: Completion) {
        if let Err(unsent) = self.tx.send(done) {
            (unsent.0)(Err(std::io::Error::other("the Raft WAL sync thread has stopped")));
        }
    }
}

fn run(db: Weak<DB>, rx: Receiver<Completion>) {
    // Blocks for the first completion, then takes everything already queued: those writes all
    // happened before this point, so one sync covers them.
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let outcome = match db.upgrade() {
            Some(db) => db.flush_wal(true).map_err(|e| e.to_string()),
            None => Err("the database is closed".to_string()),
        };
        for done in batch {
            done(outcome.clone().map_err(|e| std::io::Error::other(format!("syncing the Raft WAL: {e}"))));
        }
    }
}
