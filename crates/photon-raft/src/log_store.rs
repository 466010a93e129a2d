//! The Raft log of one group in RocksDB. Appends are reported durable only after the WAL holding
//! them is fsynced (group commit through `wal_sync`); truncations and votes are written with
//! fsync; the committed log id is written without fsync (it survives kill -9, and after power
//! loss Raft recomputes it from a quorum).

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::keys::{self, Meta, CF_LOG, CF_META};
use crate::wal_sync::WalSync;
use crate::{App, NodeId, TypeConfig};

type Result<T> = std::result::Result<T, StorageError<NodeId>>;

pub struct LogStore<A> {
    db: Arc<DB>,
    group: u64,
    wal_sync: WalSync,
    _app: PhantomData<fn() -> A>,
}

impl<A> Clone for LogStore<A> {
    fn clone(&self) -> Self {
        Self { db: self.db.clone(), group: self.group, wal_sync: self.wal_sync.clone(), _app: PhantomData }
    }
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

impl<A: App> LogStore<A> {
    pub(crate) fn new(db: Arc<DB>, group: u64, wal_sync: WalSync) -> Self {
        Self { db, group, wal_sync, _app: PhantomData }
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| read_err(std::io::Error::other(format!("missing column family {name}"))))
    }

    fn get_meta<T: DeserializeOwned>(&self, item: Meta) -> Result<Option<T>> {
        let bytes = self.db.get_cf(self.cf(CF_META)?, keys::meta_key(self.group, item)).map_err(read_err)?;
        bytes.map(|b| keys::decode(&b).map_err(read_err)).transpose()
    }

    fn put_meta<T: Serialize>(&self, item: Meta, value: &T, options: &WriteOptions) -> Result<()> {
        let bytes = keys::encode(value).map_err(write_err)?;
        self.db.put_cf_opt(self.cf(CF_META)?, keys::meta_key(self.group, item), bytes, options).map_err(write_err)
    }

    /// The entry with the highest index in this group's log, if any.
    fn last_entry(&self) -> Result<Option<Entry<TypeConfig<A>>>> {
        let from = keys::log_key(self.group, u64::MAX);
        let mut iter = self.db.iterator_cf(self.cf(CF_LOG)?, IteratorMode::From(&from, Direction::Reverse));
        match iter.next() {
            Some(Ok((key, value))) if key.starts_with(&keys::group_prefix(self.group)) => {
                Ok(Some(keys::decode(&value).map_err(read_err)?))
            }
            Some(Err(e)) => Err(read_err(e)),
            _ => Ok(None),
        }
    }

    fn delete_range(&self, from: u64, to_exclusive: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(
            self.cf(CF_LOG)?,
            keys::log_key(self.group, from),
            keys::log_key(self.group, to_exclusive),
        );
        self.db.write_opt(batch, &synced()).map_err(write_err)
    }
}

impl<A: App> RaftLogReader<TypeConfig<A>> for LogStore<A> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig<A>>>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let from = keys::log_key(self.group, start);
        let prefix = keys::group_prefix(self.group);
        let mut entries = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_LOG)?, IteratorMode::From(&from, Direction::Forward)) {
            let (key, value) = item.map_err(read_err)?;
            if !key.starts_with(&prefix) {
                break;
            }
            let index = keys::log_index(&key).ok_or_else(|| read_err(std::io::Error::other("malformed log key")))?;
            if !range.contains(&index) {
                break;
            }
            entries.push(keys::decode(&value).map_err(read_err)?);
        }
        Ok(entries)
    }
}

impl<A: App> RaftLogStorage<TypeConfig<A>> for LogStore<A> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig<A>>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_meta(Meta::LastPurged)?;
        let last_log_id = self.last_entry()?.map(|e| e.log_id).or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<()> {
        self.put_meta(Meta::Vote, vote, &synced())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>> {
        self.get_meta(Meta::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<()> {
        self.put_meta(Meta::Committed, &committed, &WriteOptions::default())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(Meta::Committed)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig<A>>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig<A>>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = self.cf(CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(cf, keys::log_key(self.group, entry.log_id.index), keys::encode(&entry).map_err(write_err)?);
        }
        // Readable now (openraft may replicate them at once); durable when the callback fires.
        self.db.write(batch).map_err(write_err)?;
        self.wal_sync.after_sync(Box::new(move |outcome| callback.log_io_completed(outcome)));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        self.delete_range(log_id.index, u64::MAX)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<()> {
        // Record the purge point first: openraft ignores entries at or before it, so a crash
        // between the two writes leaves only garbage, never a hole.
        self.put_meta(Meta::LastPurged, &log_id, &synced())?;
        self.delete_range(0, log_id.index + 1)
    }
}
