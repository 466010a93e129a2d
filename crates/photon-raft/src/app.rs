//! What an application brings to a Raft group: deterministic state transitions over RocksDB.

use std::fmt::Debug;

use rocksdb::{WriteBatch, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The application state machine of a Raft group. Its state lives in RocksDB, in column
/// families the application declares when opening [`crate::Storage`]; each method sees the
/// database as of everything applied so far and stages its changes in a `WriteBatch`, which
/// the state machine writes atomically with the applied log id. That atomicity is what makes
/// restarts exact: a command is applied exactly once, even across kill -9.
pub trait App: Send + Sync + 'static {
    /// A command proposed through Raft.
    type Request: Serialize + DeserializeOwned + Debug + Clone + Send + Sync + 'static;
    /// What applying a command answers (including application-level refusals).
    type Response: Serialize + DeserializeOwned + Debug + Clone + Default + Send + Sync + 'static;

    /// Applies one committed command at log `index` (the commands of one batch share an index). An `Err` is a storage failure and stops
    /// the node; a refused command is an `Ok` response saying so.
    fn apply(
        &mut self,
        db: &DB,
        batch: &mut WriteBatch,
        index: u64,
        request: &Self::Request,
    ) -> Result<Self::Response, BoxError>;

    /// Whether `requests` (one log entry's commands) may be applied into one write batch: no
    /// request reads what an earlier one in the list writes (each `apply` reads the database
    /// as of before the batch). Then the entry costs one RocksDB write instead of one per
    /// command. Default: no.
    fn independent(&self, _requests: &[Self::Request]) -> bool {
        false
    }

    /// Called after each applied batch is written, e.g. to publish watch events.
    fn after_write(&mut self) {}

    /// The application's whole state, serialized, as `db` shows it now.
    fn snapshot(&self, db: &DB) -> Result<Vec<u8>, BoxError>;

    /// Stages replacing the application's whole state with `data` (from [`App::snapshot`]).
    fn restore(&mut self, db: &DB, batch: &mut WriteBatch, data: &[u8]) -> Result<(), BoxError>;
}
