//! Applying one command: puts, deletes and transactions staged against a consistent view, then
//! written in the entry's batch with their history, events and the new store revision. A
//! refused command writes nothing.

use photon_raft::rocksdb::WriteBatch;

use super::keys::{self, CF_EVENTS, CF_HISTORY, CF_LATEST, CF_LEASES, CF_LEASE_KEYS, CF_META, META_REVISION};
use super::model::{
    Compare, CompareOp, CompareTarget, DeleteRange, KeyRange, KeyValue, Lease, MvccError, Op, OpResult, Put, Txn,
    Version,
};
use super::read::{self, storage, ReadError, Reader, Staged, StorageFailure};

pub struct Writer<'a> {
    reader: Reader<'a>,
    /// The revision before this command; its writes happen at `base + 1`.
    base: i64,
    staged: Staged,
    /// `(key, version)` in the order written; the position is the sub-revision.
    history: Vec<(Vec<u8>, Version)>,
    /// Lease changes, in order.
    lease_ops: Vec<LeaseOp>,
}

enum LeaseOp {
    Create(Lease),
    Delete(i64),
    Attach(i64, Vec<u8>),
    Detach(i64, Vec<u8>),
}

impl<'a> Writer<'a> {
    pub fn new(reader: Reader<'a>) -> Result<Self, StorageFailure> {
        let base = reader.revision()?;
        Ok(Self { reader, base, staged: Staged::new(), history: Vec::new(), lease_ops: Vec::new() })
    }

    fn write_revision(&self) -> i64 {
        self.base + 1
    }

    /// The store revision once this command is applied.
    pub fn revision(&self) -> i64 {
        if self.history.is_empty() {
            self.base
        } else {
            self.write_revision()
        }
    }

    fn latest(&self, key: &[u8]) -> Result<Option<KeyValue>, StorageFailure> {
        match self.staged.get(key) {
            Some(staged) => Ok(staged.clone()),
            None => self.reader.latest(key),
        }
    }

    pub fn put(&mut self, put: &Put) -> Result<Option<KeyValue>, ReadError> {
        let prev = self.latest(&put.key)?;
        if (put.ignore_value || put.ignore_lease) && prev.is_none() {
            return Err(MvccError::KeyNotFound.into());
        }
        let value = match (&prev, put.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => put.value.clone(),
        };
        let lease = match (&prev, put.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => put.lease,
        };
        if lease != 0 && self.reader.lease(lease)?.is_none() {
            return Err(MvccError::LeaseNotFound.into());
        }
        let previous_lease = prev.as_ref().map_or(0, |p| p.lease);
        if previous_lease != lease {
            if previous_lease != 0 {
                self.lease_ops.push(LeaseOp::Detach(previous_lease, put.key.clone()));
            }
            if lease != 0 {
                self.lease_ops.push(LeaseOp::Attach(lease, put.key.clone()));
            }
        }
        let revision = self.write_revision();
        let kv = KeyValue {
            key: put.key.clone(),
            value,
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease,
        };
        self.staged.insert(put.key.clone(), Some(kv.clone()));
        self.history.push((put.key.clone(), Version::Put(kv)));
        Ok(prev.filter(|_| put.prev_kv))
    }

    pub fn delete(&mut self, delete: &DeleteRange) -> Result<(i64, Vec<KeyValue>), ReadError> {
        let doomed = read::scan_merged(&self.reader, &self.staged, &delete.range)?;
        for kv in &doomed {
            if kv.lease != 0 {
                self.lease_ops.push(LeaseOp::Detach(kv.lease, kv.key.clone()));
            }
            self.staged.insert(kv.key.clone(), None);
            self.history.push((kv.key.clone(), Version::Tombstone));
        }
        let deleted = doomed.len() as i64;
        Ok((deleted, if delete.prev_kv { doomed } else { Vec::new() }))
    }

    pub fn grant(&mut self, lease: Lease) -> Result<Lease, ReadError> {
        if self.reader.lease(lease.id)?.is_some() {
            return Err(MvccError::LeaseExists.into());
        }
        self.lease_ops.push(LeaseOp::Create(lease.clone()));
        Ok(lease)
    }

    /// Deletes lease `id` and every key attached to it; returns how many keys went.
    pub fn revoke(&mut self, id: i64) -> Result<i64, ReadError> {
        if self.reader.lease(id)?.is_none() {
            return Err(MvccError::LeaseNotFound.into());
        }
        let mut deleted = 0;
        for key in self.reader.lease_keys(id)? {
            let single = DeleteRange { range: KeyRange { key, end: Vec::new() }, prev_kv: false };
            deleted += self.delete(&single)?.0;
        }
        self.lease_ops.push(LeaseOp::Delete(id));
        Ok(deleted)
    }

    fn compare(&self, compare: &Compare) -> Result<bool, ReadError> {
        let kvs = read::scan_merged(&self.reader, &self.staged, &compare.range)?;
        if kvs.is_empty() {
            // As etcd: a missing key fails a value comparison and otherwise compares as zeros.
            if matches!(compare.target, CompareTarget::Value(_)) {
                return Ok(false);
            }
            return Ok(compare_one(
                compare,
                &KeyValue {
                    key: Vec::new(),
                    value: Vec::new(),
                    create_revision: 0,
                    mod_revision: 0,
                    version: 0,
                    lease: 0,
                },
            ));
        }
        Ok(kvs.iter().all(|kv| compare_one(compare, kv)))
    }

    pub fn txn(&mut self, txn: &Txn) -> Result<(bool, Vec<OpResult>), ReadError> {
        let mut succeeded = true;
        for compare in &txn.compare {
            if !self.compare(compare)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { &txn.success } else { &txn.failure };
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            results.push(self.op(op)?);
        }
        Ok((succeeded, results))
    }

    pub fn op(&mut self, op: &Op) -> Result<OpResult, ReadError> {
        Ok(match op {
            Op::Range(range) => OpResult::Range(read::range(&self.reader, Some(&self.staged), range)?),
            Op::Put(put) => OpResult::Put { prev: self.put(put)? },
            Op::DeleteRange(delete) => {
                let (deleted, prevs) = self.delete(delete)?;
                OpResult::DeleteRange { deleted, prevs }
            }
            Op::Txn(txn) => {
                let (succeeded, results) = self.txn(txn)?;
                OpResult::Txn { succeeded, results }
            }
        })
    }

    /// Stages everything written into `batch`.
    pub fn finish(self, db: &photon_raft::rocksdb::DB, batch: &mut WriteBatch) -> Result<i64, StorageFailure> {
        let revision = self.revision();
        let cf = |name: &str| db.cf_handle(name).ok_or_else(|| storage(format!("missing column family {name}")));
        let (leases, lease_keys) = (cf(CF_LEASES)?, cf(CF_LEASE_KEYS)?);
        for op in &self.lease_ops {
            match op {
                LeaseOp::Create(lease) => {
                    batch.put_cf(leases, keys::lease_key(lease.id), keys::encode(lease).map_err(storage)?)
                }
                LeaseOp::Delete(id) => batch.delete_cf(leases, keys::lease_key(*id)),
                LeaseOp::Attach(id, key) => batch.put_cf(lease_keys, keys::lease_key_entry(*id, key), []),
                LeaseOp::Detach(id, key) => batch.delete_cf(lease_keys, keys::lease_key_entry(*id, key)),
            }
        }
        if self.history.is_empty() {
            return Ok(revision);
        }
        let (latest, history, events, meta) = (cf(CF_LATEST)?, cf(CF_HISTORY)?, cf(CF_EVENTS)?, cf(CF_META)?);
        for (key, kv) in &self.staged {
            match kv {
                Some(kv) => batch.put_cf(latest, key, keys::encode(kv).map_err(storage)?),
                None => batch.delete_cf(latest, key),
            }
        }
        for (sub, (key, version)) in self.history.iter().enumerate() {
            let sub = sub as i64;
            batch.put_cf(history, keys::history_key(key, revision, sub), keys::encode(version).map_err(storage)?);
            batch.put_cf(events, keys::rev_bytes(revision, sub), key);
        }
        batch.put_cf(meta, META_REVISION, keys::encode(&revision).map_err(storage)?);
        Ok(revision)
    }
}

fn compare_one(compare: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    let ordering = match &compare.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
    };
    match compare.op {
        CompareOp::Equal => ordering == Ordering::Equal,
        CompareOp::NotEqual => ordering != Ordering::Equal,
        CompareOp::Greater => ordering == Ordering::Greater,
        CompareOp::Less => ordering == Ordering::Less,
    }
}
