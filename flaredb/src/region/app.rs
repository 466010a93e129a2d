//! A region's replicated state machine: the commands proposed to a region's Raft group and how
//! every replica applies them to its slice of the `data` column family.
//!
//! Commands carry the proposer's clock (`now_ms`) so that TTL decisions (is this key still
//! there? what version does a write after expiry get?) are the same on every replica.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use photon_raft::rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use photon_raft::{decode, encode, App, BoxError};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::Descriptor;
use crate::keys::{split_ttl_key, ttl_key, StoredRecord, StoredRecordRef, CF_DATA, CF_REGIONS, CF_TTL};

/// What a region's log carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Proposal {
    /// The proposing store's clock, for TTL decisions.
    pub now_ms: i64,
    pub command: Command,
}

/// Keys here are store keys (see `keys.rs`); `expires_at_ms` 0 means no TTL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    Put {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        expires_at_ms: i64,
    },
    /// All or nothing: every key must be in the region. A key listed twice is written twice,
    /// in order.
    BatchPut { entries: Vec<BatchEntry> },
    Delete {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
    /// Writes only if the key's live version is `expected_version` (0: absent).
    CompareAndSwap {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
        expected_version: u64,
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        expires_at_ms: i64,
    },
    /// Removes keys whose TTL has passed, as (expiry, key) from the `ttl` index (proposed by
    /// the region leader's sweeper); a key rewritten since is left alone.
    Expire { keys: Vec<(i64, Vec<u8>)> },
    /// Splits the region at `split_key`: it keeps `[start, split_key)`, and region `new_region`
    /// takes `[split_key, end)` with the same replicas (`members`: store id → peer address).
    /// Refused if the region's epoch moved past `epoch` since the split was decided.
    Split {
        #[serde(with = "serde_bytes")]
        split_key: Vec<u8>,
        new_region: u64,
        epoch: u64,
        members: BTreeMap<u64, String>,
    },
}

/// One write of a `BatchPut`. Encoded exactly as the `(key, value, expires_at_ms)` tuple it
/// replaced (bincode writes a struct's fields in order, and a byte string as a sequence of
/// bytes), so log entries written before still decode; the keys and values as byte strings,
/// not as sequences visited byte by byte.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BatchEntry {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub expires_at_ms: i64,
}

/// What applying a proposal answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    #[default]
    Nothing,
    Put {
        version: u64,
    },
    BatchPut {
        versions: Vec<u64>,
    },
    Delete {
        /// The live record removed, if there was one.
        previous: Option<StoredRecord>,
    },
    CompareAndSwap {
        succeeded: bool,
        /// The new record on success, the current one (if any) on failure.
        record: Option<StoredRecord>,
    },
    Expired {
        removed: usize,
    },
    /// A key is outside this region (it split or moved since the proposer looked).
    OutOfRange,
    Split {
        left: Descriptor,
        right: Descriptor,
    },
    /// The region changed since the request was decided (another split came first).
    StaleEpoch {
        current: Descriptor,
    },
}

/// A region created by a split on this replica, for the store to start its Raft group.
#[derive(Debug, Clone)]
pub struct Born {
    pub descriptor: Descriptor,
    pub members: BTreeMap<u64, String>,
}

/// One applied change, for watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: Vec<u8>,
    /// `None`: deleted (or expired).
    pub record: Option<StoredRecord>,
}

/// The state machine of one region.
pub struct RegionApp {
    descriptor: Arc<RwLock<Descriptor>>,
    pending: Vec<Change>,
    changes: broadcast::Sender<Arc<Change>>,
    born: Vec<Born>,
    births: mpsc::UnboundedSender<Born>,
}

fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a photon_raft::rocksdb::ColumnFamily, BoxError> {
    db.cf_handle(name).ok_or_else(|| format!("missing column family {name}").into())
}

/// The record stored under `key`, if any, live or not.
pub fn stored(db: &DB, key: &[u8]) -> Result<Option<StoredRecord>, BoxError> {
    match db.get_cf(cf(db, CF_DATA)?, key)? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// The version and expiry of a stored record: what a write needs to know of the record it
/// replaces (read in place, its value never copied).
#[derive(Debug, Clone, Copy)]
struct Head {
    version: u64,
    expires_at_ms: i64,
}

impl Head {
    fn of(db: &DB, key: &[u8]) -> Result<Option<Head>, BoxError> {
        match db.get_pinned_cf(cf(db, CF_DATA)?, key)? {
            Some(bytes) => {
                let record: StoredRecordRef = decode(&bytes)?;
                Ok(Some(Head { version: record.version, expires_at_ms: record.expires_at_ms }))
            }
            None => Ok(None),
        }
    }

    fn live_at(&self, now_ms: i64) -> bool {
        crate::keys::live_at(self.expires_at_ms, now_ms)
    }

    /// The version of `head` if it is live at `now_ms`, else 0 (absent).
    fn live_version(head: Option<Head>, now_ms: i64) -> u64 {
        head.filter(|h| h.live_at(now_ms)).map_or(0, |h| h.version)
    }
}

impl From<&StoredRecord> for Head {
    fn from(record: &StoredRecord) -> Self {
        Head { version: record.version, expires_at_ms: record.expires_at_ms }
    }
}

impl RegionApp {
    /// `descriptor` is shared with the store, which routes requests by it; regions split off
    /// this one are announced on `births` once their descriptor is written.
    pub fn new(
        descriptor: Arc<RwLock<Descriptor>>,
        changes: broadcast::Sender<Arc<Change>>,
        births: mpsc::UnboundedSender<Born>,
    ) -> Self {
        Self { descriptor, pending: Vec::new(), changes, born: Vec::new(), births }
    }

    fn split(
        &mut self,
        db: &DB,
        batch: &mut WriteBatch,
        split_key: &[u8],
        new_region: u64,
        epoch: u64,
        members: &BTreeMap<u64, String>,
    ) -> Result<Applied, BoxError> {
        let current = self.descriptor.read().unwrap_or_else(|p| p.into_inner()).clone();
        if current.epoch != epoch || !current.contains(split_key) || split_key == current.start_key.as_slice() {
            return Ok(Applied::StaleEpoch { current });
        }
        let left = Descriptor { end_key: split_key.to_vec(), epoch: epoch + 1, ..current.clone() };
        let right =
            Descriptor { id: new_region, start_key: split_key.to_vec(), end_key: current.end_key, epoch: epoch + 1 };
        let regions = cf(db, CF_REGIONS)?;
        batch.put_cf(regions, left.id.to_be_bytes(), encode(&left)?);
        batch.put_cf(regions, right.id.to_be_bytes(), encode(&right)?);
        *self.descriptor.write().unwrap_or_else(|p| p.into_inner()) = left.clone();
        self.born.push(Born { descriptor: right.clone(), members: members.clone() });
        Ok(Applied::Split { left, right })
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.descriptor.read().unwrap_or_else(|p| p.into_inner()).contains(key)
    }

    /// Writes `value` over `old`, the record stored under `key` now (live or not).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        db: &DB,
        batch: &mut WriteBatch,
        key: &[u8],
        old: Option<Head>,
        value: &[u8],
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<StoredRecord, BoxError> {
        let version = Head::live_version(old, now_ms) + 1;
        let record = StoredRecord { version, expires_at_ms, value: value.to_vec() };
        self.stage(db, batch, key, old, record.clone())?;
        Ok(record)
    }

    /// Stages `record` under `key` in place of `old` (as stored before this command).
    fn stage(
        &mut self,
        db: &DB,
        batch: &mut WriteBatch,
        key: &[u8],
        old: Option<Head>,
        record: StoredRecord,
    ) -> Result<(), BoxError> {
        Self::unindex(db, batch, key, old)?;
        if record.expires_at_ms != 0 {
            batch.put_cf(cf(db, CF_TTL)?, ttl_key(record.expires_at_ms, key), []);
        }
        batch.put_cf(cf(db, CF_DATA)?, key, encode(&record)?);
        self.pending.push(Change { key: key.to_vec(), record: Some(record) });
        Ok(())
    }

    fn delete(&mut self, db: &DB, batch: &mut WriteBatch, key: &[u8], old: Option<Head>) -> Result<(), BoxError> {
        Self::unindex(db, batch, key, old)?;
        batch.delete_cf(cf(db, CF_DATA)?, key);
        self.pending.push(Change { key: key.to_vec(), record: None });
        Ok(())
    }

    /// Drops the `ttl` index entry of `old`, the record stored under `key`, if it has one.
    fn unindex(db: &DB, batch: &mut WriteBatch, key: &[u8], old: Option<Head>) -> Result<(), BoxError> {
        if let Some(old) = old.filter(|r| r.expires_at_ms != 0) {
            batch.delete_cf(cf(db, CF_TTL)?, ttl_key(old.expires_at_ms, key));
        }
        Ok(())
    }
}

impl App for RegionApp {
    type Request = Proposal;
    type Response = Applied;

    fn apply(
        &mut self,
        db: &DB,
        batch: &mut WriteBatch,
        _index: u64,
        proposal: &Proposal,
    ) -> Result<Applied, BoxError> {
        let now = proposal.now_ms;
        // Staged changes are published by `after_write` (a command that fails stops the
        // replica, so nothing staged by it is ever published).
        Ok(match &proposal.command {
            Command::Put { key, .. } | Command::Delete { key } | Command::CompareAndSwap { key, .. }
                if !self.contains(key) =>
            {
                Applied::OutOfRange
            }
            Command::BatchPut { entries } if entries.iter().any(|e| !self.contains(&e.key)) => Applied::OutOfRange,
            Command::Put { key, value, expires_at_ms } => {
                let old = Head::of(db, key)?;
                Applied::Put { version: self.write(db, batch, key, old, value, *expires_at_ms, now)?.version }
            }
            Command::BatchPut { entries } => {
                // A key listed twice: the second write must see the first, which is still
                // only staged in `batch`.
                let mut staged: std::collections::HashMap<&[u8], u64> = std::collections::HashMap::new();
                let mut versions = Vec::with_capacity(entries.len());
                for BatchEntry { key, value, expires_at_ms } in entries {
                    let old = Head::of(db, key)?;
                    let version = match staged.get(key.as_slice()) {
                        Some(version) => version + 1,
                        None => Head::live_version(old, now) + 1,
                    };
                    self.stage(
                        db,
                        batch,
                        key,
                        old,
                        StoredRecord { version, expires_at_ms: *expires_at_ms, value: value.clone() },
                    )?;
                    staged.insert(key, version);
                    versions.push(version);
                }
                Applied::BatchPut { versions }
            }
            Command::Delete { key } => {
                let old = stored(db, key)?;
                if let Some(record) = &old {
                    self.delete(db, batch, key, Some(record.into()))?;
                }
                Applied::Delete { previous: old.filter(|r| r.live_at(now)) }
            }
            Command::CompareAndSwap { key, expected_version, value, expires_at_ms } => {
                let old = stored(db, key)?;
                let head = old.as_ref().map(Head::from);
                let current = old.filter(|r| r.live_at(now));
                if current.as_ref().map_or(0, |r| r.version) == *expected_version {
                    let record = self.write(db, batch, key, head, value, *expires_at_ms, now)?;
                    Applied::CompareAndSwap { succeeded: true, record: Some(record) }
                } else {
                    Applied::CompareAndSwap { succeeded: false, record: current }
                }
            }
            Command::Split { split_key, new_region, epoch, members } => {
                self.split(db, batch, split_key, *new_region, *epoch, members)?
            }
            Command::Expire { keys } => {
                let mut removed = 0;
                for (expiry, key) in keys {
                    // The index entry goes either way: it is expired or stale.
                    batch.delete_cf(cf(db, CF_TTL)?, ttl_key(*expiry, key));
                    let old = Head::of(db, key)?;
                    let expired = old.is_some_and(|r| r.expires_at_ms == *expiry && !r.live_at(now));
                    if expired && self.contains(key) {
                        self.delete(db, batch, key, old)?;
                        removed += 1;
                    }
                }
                Applied::Expired { removed }
            }
        })
    }

    /// Single-key writes to distinct keys only: each reads just its own key's record and TTL
    /// entry. Splits and expiry sweeps, and two commands writing one key, go one by one.
    fn independent(&self, proposals: &[Proposal]) -> bool {
        let mut keys = std::collections::HashSet::new();
        proposals.iter().all(|p| match &p.command {
            Command::Put { key, .. } | Command::Delete { key } | Command::CompareAndSwap { key, .. } => {
                keys.insert(key.as_slice())
            }
            // A key the batch lists twice is fine (its apply sees its own staged write); one an
            // earlier command writes is not.
            Command::BatchPut { entries } => {
                let own: std::collections::HashSet<&[u8]> = entries.iter().map(|e| e.key.as_slice()).collect();
                own.into_iter().all(|key| keys.insert(key))
            }
            Command::Expire { .. } | Command::Split { .. } => false,
        })
    }

    fn after_write(&mut self) {
        for change in self.pending.drain(..) {
            // No watcher listening is fine.
            let _ = self.changes.send(Arc::new(change));
        }
        for born in self.born.drain(..) {
            // The store is stopping when nobody listens; the descriptor is on disk for restart.
            let _ = self.births.send(born);
        }
    }

    fn snapshot(&self, db: &DB) -> Result<Vec<u8>, BoxError> {
        let descriptor = self.descriptor.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut records = Vec::new();
        let from = IteratorMode::From(&descriptor.start_key, Direction::Forward);
        for item in db.iterator_cf(cf(db, CF_DATA)?, from) {
            let (key, value) = item?;
            if !descriptor.contains(&key) {
                break;
            }
            records.push((key.to_vec(), value.to_vec()));
        }
        Ok(encode(&(descriptor, records))?)
    }

    fn restore(&mut self, db: &DB, batch: &mut WriteBatch, data: &[u8]) -> Result<(), BoxError> {
        let (descriptor, records): (Descriptor, Vec<(Vec<u8>, Vec<u8>)>) = decode(data)?;
        let data_cf = cf(db, CF_DATA)?;
        let end = if descriptor.end_key.is_empty() { vec![0xff; 64] } else { descriptor.end_key.clone() };
        batch.delete_range_cf(data_cf, &descriptor.start_key, &end);
        if descriptor.end_key.is_empty() {
            // delete_range needs an end: past the synthetic one, delete key by key.
            for item in db.iterator_cf(data_cf, IteratorMode::From(&end, Direction::Forward)) {
                batch.delete_cf(data_cf, item?.0);
            }
        }
        // The ttl index is rebuilt from the records rather than shipped: its order is by expiry,
        // so the region's entries are found by scanning it once here.
        let ttl_cf = cf(db, CF_TTL)?;
        for item in db.iterator_cf(ttl_cf, IteratorMode::Start) {
            let (ttl, _) = item?;
            if split_ttl_key(&ttl).is_some_and(|(_, key)| descriptor.contains(key)) {
                batch.delete_cf(ttl_cf, ttl);
            }
        }
        for (key, value) in records {
            let record: StoredRecord = decode(&value)?;
            if record.expires_at_ms != 0 {
                batch.put_cf(ttl_cf, ttl_key(record.expires_at_ms, &key), []);
            }
            batch.put_cf(data_cf, key, value);
        }
        batch.put_cf(cf(db, CF_REGIONS)?, descriptor.id.to_be_bytes(), encode(&descriptor)?);
        *self.descriptor.write().unwrap_or_else(|p| p.into_inner()) = descriptor;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log entries written when a batch entry was a tuple still decode, and encode the same.
    #[test]
    fn batch_entries_encode_as_the_tuples_they_replaced() {
        let entry = BatchEntry { key: b"k".to_vec(), value: vec![7; 300], expires_at_ms: -3 };
        let tuple = (entry.key.clone(), entry.value.clone(), entry.expires_at_ms);
        let (new, old) = (encode(&vec![entry.clone()]).unwrap(), encode(&vec![tuple]).unwrap());
        assert_eq!(new, old);
        assert_eq!(decode::<Vec<BatchEntry>>(&old).unwrap(), vec![entry]);
    }
}
