//! The MVCC key-value store behind chainfire's etcd API: revisions, history and compaction
//! over RocksDB, applied deterministically as chainfire's Raft state machine.

mod compact;
pub mod events;
pub mod keys;
pub mod model;
pub mod read;
mod write;

use photon_raft::rocksdb::{IteratorMode, WriteBatch, DB};
use photon_raft::{App, BoxError};

use self::model::{Applied, Command, OpResult, Outcome};
use self::read::{storage, ReadError, Reader};
use self::write::Writer;

/// Chainfire's Raft application. After each applied batch is written it publishes the store
/// revision, which is how watchers learn there is something new to read.
#[derive(Debug, Default)]
pub struct MvccApp {
    revision: Option<tokio::sync::watch::Sender<i64>>,
    last_revision: i64,
}

impl MvccApp {
    /// An app that publishes the store revision on `revision` after every applied batch.
    pub fn with_notifier(revision: tokio::sync::watch::Sender<i64>) -> Self {
        Self { revision: Some(revision), last_revision: 0 }
    }
}

/// What a snapshot holds: every entry of every chainfire column family.
type SnapshotData = Vec<(u8, Vec<u8>, Vec<u8>)>;

fn refused_or_failed(e: ReadError) -> Result<Option<Result<Outcome, model::MvccError>>, BoxError> {
    match e {
        ReadError::Refused(refusal) => Ok(Some(Err(refusal))),
        ReadError::Storage(failure) => Err(Box::new(failure)),
    }
}

/// A metadata command: one `kv_meta` entry written, no new revision.
fn meta_applied(db: &DB, batch: &mut WriteBatch, key: &[u8], value: Vec<u8>, outcome: Outcome) -> Result<Applied, BoxError> {
    let cf = db.cf_handle(keys::CF_META).ok_or_else(|| storage("missing column family kv_meta"))?;
    batch.put_cf(cf, key, value);
    let revision = Reader::new(db, None).revision()?;
    Ok(Applied { revision, result: Some(Ok(outcome)) })
}

fn compact_applied(db: &DB, batch: &mut WriteBatch, revision: i64) -> Result<Applied, BoxError> {
    let result = match compact::compact(db, batch, revision) {
        Ok(()) => Some(Ok(Outcome::Op(OpResult::Txn { succeeded: true, results: Vec::new() }))),
        Err(e) => refused_or_failed(e)?,
    };
    Ok(Applied { revision: Reader::new(db, None).revision()?, result })
}

impl App for MvccApp {
    type Request = Command;
    type Response = Applied;

    fn apply(&mut self, db: &DB, batch: &mut WriteBatch, _index: u64, command: &Command) -> Result<Applied, BoxError> {
        match command {
            Command::SetNoSpaceAlarm(raised) => {
                return meta_applied(db, batch, keys::META_NOSPACE, keys::encode(raised)?, Outcome::AlarmSet(*raised))
            }
            Command::PublishMember { id, client_urls } => {
                return meta_applied(db, batch, &keys::member_key(*id), keys::encode(client_urls)?, Outcome::MemberPublished)
            }
            Command::LeaseCheckpoint { remaining_ms } => {
                return meta_applied(db, batch, keys::META_LEASE_CHECKPOINT, keys::encode(remaining_ms)?, Outcome::LeasesCheckpointed)
            }
            _ => {}
        }
        let adds_data = match command {
            Command::Put(_) | Command::LeaseGrant { .. } => true,
            Command::Txn(txn) => model::puts_anything(&txn.success) || model::puts_anything(&txn.failure),
            _ => false,
        };
        if adds_data && Reader::new(db, None).nospace()? {
            // As etcd: while the alarm is raised only reads, deletes and compaction go through.
            let revision = Reader::new(db, None).revision()?;
            return Ok(Applied { revision, result: Some(Err(model::MvccError::NoSpace)) });
        }
        let mut writer = Writer::new(Reader::new(db, None))?;
        let outcome = match command {
            Command::Compact { revision } => return compact_applied(db, batch, *revision),
            Command::SetNoSpaceAlarm(_) | Command::PublishMember { .. } | Command::LeaseCheckpoint { .. } => {
                return Err(Box::new(storage("a metadata command reached the writer")))
            }
            Command::LeaseGrant { id, ttl } => {
                writer.grant(model::Lease { id: *id, ttl: *ttl }).map(Outcome::LeaseGranted)
            }
            Command::LeaseRevoke { id } => writer.revoke(*id).map(|deleted| Outcome::LeaseRevoked { deleted }),
            Command::Put(put) => writer.put(put).map(|prev| Outcome::Op(OpResult::Put { prev })),
            Command::DeleteRange(delete) => {
                writer.delete(delete).map(|(deleted, prevs)| Outcome::Op(OpResult::DeleteRange { deleted, prevs }))
            }
            Command::Txn(txn) => {
                writer.txn(txn).map(|(succeeded, results)| Outcome::Op(OpResult::Txn { succeeded, results }))
            }
        };
        match outcome {
            Ok(result) => {
                let revision = writer.finish(db, batch)?;
                self.last_revision = revision;
                Ok(Applied { revision, result: Some(Ok(result)) })
            }
            // A refused command changes nothing: the staged writes are dropped.
            Err(e) => Ok(Applied { revision: Reader::new(db, None).revision()?, result: refused_or_failed(e)? }),
        }
    }

    fn after_write(&mut self) {
        if let Some(sender) = &self.revision {
            // Only a change wakes watchers; `send_if_modified` skips the no-op case.
            let revision = self.last_revision;
            sender.send_if_modified(|current| {
                let newer = revision > *current;
                if newer {
                    *current = revision;
                }
                newer
            });
        }
    }

    fn snapshot(&self, db: &DB) -> Result<Vec<u8>, BoxError> {
        let mut data: SnapshotData = Vec::new();
        for (index, name) in keys::ALL_CFS.iter().enumerate() {
            let cf = db.cf_handle(name).ok_or_else(|| storage(format!("missing column family {name}")))?;
            for item in db.iterator_cf(cf, IteratorMode::Start) {
                let (k, v) = item?;
                data.push((index as u8, k.to_vec(), v.to_vec()));
            }
        }
        Ok(keys::encode(&data)?)
    }

    fn restore(&mut self, db: &DB, batch: &mut WriteBatch, bytes: &[u8]) -> Result<(), BoxError> {
        let data: SnapshotData = keys::decode(bytes)?;
        let cfs = keys::ALL_CFS
            .iter()
            .map(|name| db.cf_handle(name).ok_or_else(|| storage(format!("missing column family {name}"))))
            .collect::<Result<Vec<_>, _>>()?;
        for cf in &cfs {
            for item in db.iterator_cf(*cf, IteratorMode::Start) {
                batch.delete_cf(*cf, item?.0);
            }
        }
        for (index, k, v) in data {
            let cf = cfs
                .get(index as usize)
                .ok_or_else(|| storage(format!("snapshot names unknown column family {index}")))?;
            if keys::ALL_CFS[index as usize] == keys::CF_META && k == keys::META_REVISION {
                // Watchers learn the restored revision in after_write.
                self.last_revision = keys::decode(&v)?;
            }
            batch.put_cf(*cf, k, v);
        }
        Ok(())
    }
}
