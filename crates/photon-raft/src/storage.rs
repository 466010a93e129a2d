//! Opening the RocksDB that holds Raft logs, Raft metadata and the applications' column
//! families, and handing out per-group log stores and state machines.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::keys::{CF_LOG, CF_META};
use crate::wal_sync::WalSync;
use crate::{App, LogStore, RaftError, StateMachine};

/// One RocksDB per process, shared by every Raft group in it.
#[derive(Clone)]
pub struct Storage {
    db: Arc<DB>,
    dir: PathBuf,
    wal_sync: WalSync,
}

impl Storage {
    /// Opens (or creates) the database in `dir` with the Raft column families and `app_cfs`.
    pub fn open(dir: &Path, app_cfs: &[&str]) -> Result<Self, RaftError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_max_background_jobs(2);
        let names = [CF_LOG, CF_META].into_iter().chain(app_cfs.iter().copied());
        let cfs = names.map(|name| ColumnFamilyDescriptor::new(name, Options::default())).collect::<Vec<_>>();
        let path = dir.join("rocksdb");
        let db = DB::open_cf_descriptors(&options, &path, cfs).map_err(|source| RaftError::Open { path, source })?;
        let db = Arc::new(db);
        let wal_sync = WalSync::start(&db).map_err(RaftError::WalSyncThread)?;
        Ok(Self { db, dir: dir.to_path_buf(), wal_sync })
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// The log store and state machine of Raft group `group`, running `app`.
    pub fn group<A: App>(&self, group: u64, app: A) -> Result<(LogStore<A>, StateMachine<A>), RaftError> {
        let log = LogStore::new(self.db.clone(), group, self.wal_sync.clone());
        let sm =
            StateMachine::new(self.db.clone(), group, app, self.dir.join("snapshots").join(format!("group-{group}")))?;
        Ok((log, sm))
    }
}
