//! The state machine side of a Raft group: applies committed entries through the [`App`],
//! writing each command's changes together with the progress they make in one RocksDB batch
//! (the applied log id after an entry's last command, the count of commands done before), and
//! builds, stores and installs snapshots.
//!
//! Why progress within an entry: an entry carries a batch of commands and each must see the
//! ones before it, so they are written one by one; after kill -9 mid-entry the entry is applied
//! again from the first command not yet written, never twice.
//!
//! Snapshots are files under `<dir>/snapshots/group-<id>/`, written to a temporary name, fsynced
//! and renamed; the current one is recorded in `raft_meta`. The application's state is
//! serialized on the apply path when a snapshot is requested, so it is consistent with the
//! applied log id without holding a RocksDB snapshot across tasks.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageError, StorageIOError,
    StoredMembership,
};
use rocksdb::{WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;

use crate::keys::{self, Meta, CF_META};
use crate::{App, Batch, NodeId, RaftError, TypeConfig};

type Result<T> = std::result::Result<T, StorageError<NodeId>>;
type Membership = StoredMembership<NodeId, BasicNode>;

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&std::io::Error::other(e.to_string())).into()
}

fn snapshot_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, &std::io::Error::other(e.to_string())).into()
}

pub struct StateMachine<A: App> {
    db: Arc<DB>,
    group: u64,
    app: A,
    snapshot_dir: PathBuf,
    applied: Option<LogId<NodeId>>,
    /// Commands already applied of the entry after `applied`, when it was cut short.
    partial: Option<(LogId<NodeId>, usize)>,
    membership: Membership,
}

fn read_meta<T: DeserializeOwned>(db: &DB, group: u64, item: Meta) -> std::result::Result<Option<T>, String> {
    let cf = db.cf_handle(CF_META).ok_or("missing column family raft_meta")?;
    let bytes = db.get_cf(cf, keys::meta_key(group, item)).map_err(|e| e.to_string())?;
    bytes.map(|b| keys::decode(&b).map_err(|e| e.to_string())).transpose()
}

impl<A: App> StateMachine<A> {
    pub(crate) fn new(db: Arc<DB>, group: u64, app: A, snapshot_dir: PathBuf) -> std::result::Result<Self, RaftError> {
        let corrupt = |e: String| RaftError::Transport(format!("raft_meta of group {group} is unreadable: {e}"));
        let applied = read_meta(&db, group, Meta::Applied).map_err(corrupt)?;
        let membership = read_meta(&db, group, Meta::Membership).map_err(corrupt)?.unwrap_or_default();
        let partial = read_meta(&db, group, Meta::PartialApply).map_err(corrupt)?;
        Ok(Self { db, group, app, snapshot_dir, applied, partial, membership })
    }

    /// The application, for reads served outside Raft (serializable reads, health).
    pub fn app(&self) -> &A {
        &self.app
    }

    fn stage_applied(
        &self,
        batch: &mut WriteBatch,
        applied: &LogId<NodeId>,
        membership: Option<&Membership>,
    ) -> Result<()> {
        let cf = self.db.cf_handle(CF_META).ok_or_else(|| sm_err("missing column family raft_meta"))?;
        batch.put_cf(cf, keys::meta_key(self.group, Meta::Applied), keys::encode(applied).map_err(sm_err)?);
        batch.delete_cf(cf, keys::meta_key(self.group, Meta::PartialApply));
        if let Some(membership) = membership {
            batch.put_cf(cf, keys::meta_key(self.group, Meta::Membership), keys::encode(membership).map_err(sm_err)?);
        }
        Ok(())
    }

    fn stage_partial(&self, batch: &mut WriteBatch, entry: &LogId<NodeId>, done: usize) -> Result<()> {
        let cf = self.db.cf_handle(CF_META).ok_or_else(|| sm_err("missing column family raft_meta"))?;
        let progress = keys::encode(&(entry, done)).map_err(sm_err)?;
        batch.put_cf(cf, keys::meta_key(self.group, Meta::PartialApply), progress);
        Ok(())
    }

    /// Applies the commands of one batch entry, each in its own RocksDB write.
    fn apply_batch(&mut self, log_id: &LogId<NodeId>, commands: &[A::Request]) -> Result<Vec<A::Response>> {
        let done = match self.partial.take() {
            Some((entry, done)) if entry == *log_id => done,
            _ => 0,
        };
        if done == 0 && commands.len() > 1 && self.app.independent(commands) {
            // One write for the whole entry: atomic with the applied log id, like one command.
            let mut batch = WriteBatch::default();
            let mut responses = Vec::with_capacity(commands.len());
            for command in commands {
                responses.push(self.app.apply(&self.db, &mut batch, log_id.index, command).map_err(sm_err)?);
            }
            self.stage_applied(&mut batch, log_id, None)?;
            self.db.write(batch).map_err(sm_err)?;
            self.app.after_write();
            return Ok(responses);
        }
        let mut responses = vec![A::Response::default(); done.min(commands.len())];
        for (i, command) in commands.iter().enumerate().skip(done) {
            let mut batch = WriteBatch::default();
            responses.push(self.app.apply(&self.db, &mut batch, log_id.index, command).map_err(sm_err)?);
            if i + 1 < commands.len() {
                self.stage_partial(&mut batch, log_id, i + 1)?;
            } else {
                self.stage_applied(&mut batch, log_id, None)?;
            }
            self.db.write(batch).map_err(sm_err)?;
            self.app.after_write();
        }
        if commands.is_empty() {
            self.write_applied(log_id, None)?;
        }
        Ok(responses)
    }

    fn write_applied(&mut self, log_id: &LogId<NodeId>, membership: Option<&Membership>) -> Result<()> {
        let mut batch = WriteBatch::default();
        self.stage_applied(&mut batch, log_id, membership)?;
        self.db.write(batch).map_err(sm_err)
    }
}

/// A snapshot whose data was serialized when it was requested; `build_snapshot` persists it.
pub struct SnapshotBuilder<A> {
    db: Arc<DB>,
    group: u64,
    dir: PathBuf,
    data: std::result::Result<Vec<u8>, String>,
    applied: Option<LogId<NodeId>>,
    membership: Membership,
    _app: std::marker::PhantomData<fn() -> A>,
}

fn persist_snapshot(
    db: &DB,
    group: u64,
    dir: &std::path::Path,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    data: &[u8],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(snapshot_err)?;
    let path = dir.join(format!("{}.snap", meta.snapshot_id));
    let tmp = dir.join(format!("{}.snap.tmp", meta.snapshot_id));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(snapshot_err)?;
    let cf = db.cf_handle(CF_META).ok_or_else(|| snapshot_err("missing column family raft_meta"))?;
    let mut options = WriteOptions::default();
    options.set_sync(true);
    db.put_cf_opt(cf, keys::meta_key(group, Meta::Snapshot), keys::encode(meta).map_err(snapshot_err)?, &options)
        .map_err(snapshot_err)?;
    // Older snapshots are superseded; failing to delete one only wastes space.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path() != path {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}

impl<A: App> RaftSnapshotBuilder<TypeConfig<A>> for SnapshotBuilder<A> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig<A>>> {
        let b = &*self;
        let data = b.data.as_ref().map_err(|e| snapshot_err(format!("serializing the state machine failed: {e}")))?;
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let snapshot_id = match b.applied {
            Some(id) => format!("{}-{}-{nanos}", id.leader_id.term, id.index),
            None => format!("0-0-{nanos}"),
        };
        let meta = SnapshotMeta { last_log_id: b.applied, last_membership: b.membership.clone(), snapshot_id };
        persist_snapshot(&b.db, b.group, &b.dir, &meta, data)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data.clone())) })
    }
}

impl<A: App> RaftStateMachine<TypeConfig<A>> for StateMachine<A> {
    type SnapshotBuilder = SnapshotBuilder<A>;

    async fn applied_state(&mut self) -> Result<(Option<LogId<NodeId>>, Membership)> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<A::Response>>>
    where
        I: IntoIterator<Item = Entry<TypeConfig<A>>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        for entry in entries {
            let response = match &entry.payload {
                EntryPayload::Blank => {
                    self.write_applied(&entry.log_id, None)?;
                    Vec::new()
                }
                EntryPayload::Normal(Batch(commands)) => self.apply_batch(&entry.log_id, commands)?,
                EntryPayload::Membership(m) => {
                    let membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    self.write_applied(&entry.log_id, Some(&membership))?;
                    self.membership = membership;
                    self.app.after_write();
                    Vec::new()
                }
            };
            self.applied = Some(entry.log_id);
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            group: self.group,
            dir: self.snapshot_dir.clone(),
            data: self.app.snapshot(&self.db).map_err(|e| e.to_string()),
            applied: self.applied,
            membership: self.membership.clone(),
            _app: std::marker::PhantomData,
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<()> {
        let data = snapshot.into_inner();
        let mut batch = WriteBatch::default();
        self.app.restore(&self.db, &mut batch, &data).map_err(snapshot_err)?;
        if let Some(applied) = &meta.last_log_id {
            self.stage_applied(&mut batch, applied, Some(&meta.last_membership))?;
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options).map_err(snapshot_err)?;
        self.applied = meta.last_log_id;
        self.partial = None;
        self.membership = meta.last_membership.clone();
        self.app.after_write();
        persist_snapshot(&self.db, self.group, &self.snapshot_dir, meta, &data)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig<A>>>> {
        let Some(meta) =
            read_meta::<SnapshotMeta<NodeId, BasicNode>>(&self.db, self.group, Meta::Snapshot).map_err(snapshot_err)?
        else {
            return Ok(None);
        };
        let path = self.snapshot_dir.join(format!("{}.snap", meta.snapshot_id));
        let data = std::fs::read(&path).map_err(snapshot_err)?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}
