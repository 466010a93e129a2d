//! Reading the store: the live keys at the current revision, or history at a past one, with
//! etcd's range semantics (filters, sort, limit, count). Used both by gRPC reads (on a RocksDB
//! snapshot) and by transactions being applied (with their own uncommitted writes overlaid).

use std::collections::BTreeMap;

use photon_raft::rocksdb::{Direction, IteratorMode, ReadOptions, Snapshot, DB};

use super::keys::{
    self, CF_HISTORY, CF_LATEST, CF_LEASES, CF_LEASE_KEYS, CF_META, META_COMPACT, META_NOSPACE, META_REVISION,
};
use super::model::{KeyRange, KeyValue, Lease, MvccError, Range, RangeResult, SortOrder, SortTarget, Version};

/// A storage failure (RocksDB or a corrupt value), as opposed to a refused request.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct StorageFailure(pub String);

pub fn storage(e: impl std::fmt::Display) -> StorageFailure {
    StorageFailure(e.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Refused(#[from] MvccError),
    #[error(transparent)]
    Storage(#[from] StorageFailure),
}

/// Uncommitted writes of the command being applied: `None` marks a deletion.
pub type Staged = BTreeMap<Vec<u8>, Option<KeyValue>>;

/// A consistent view of the store: the database itself while applying (single writer), or a
/// RocksDB snapshot when serving reads concurrently with apply.
pub struct Reader<'a> {
    db: &'a DB,
    snapshot: Option<&'a Snapshot<'a>>,
}

impl<'a> Reader<'a> {
    pub fn new(db: &'a DB, snapshot: Option<&'a Snapshot<'a>>) -> Self {
        Self { db, snapshot }
    }

    pub(crate) fn db(&self) -> &'a DB {
        self.db
    }

    pub(crate) fn options(&self) -> ReadOptions {
        let mut options = ReadOptions::default();
        if let Some(snapshot) = self.snapshot {
            options.set_snapshot(snapshot);
        }
        options
    }

    pub(crate) fn cf(&self, name: &str) -> Result<&photon_raft::rocksdb::ColumnFamily, StorageFailure> {
        self.db.cf_handle(name).ok_or_else(|| storage(format!("missing column family {name}")))
    }

    fn meta(&self, key: &[u8], default: i64) -> Result<i64, StorageFailure> {
        match self.db.get_cf_opt(self.cf(CF_META)?, key, &self.options()).map_err(storage)? {
            Some(bytes) => keys::decode(&bytes).map_err(storage),
            None => Ok(default),
        }
    }

    /// The store revision: 1 for an empty store, as in etcd.
    pub fn revision(&self) -> Result<i64, StorageFailure> {
        self.meta(META_REVISION, 1)
    }

    /// Whether the NOSPACE alarm is raised.
    pub fn nospace(&self) -> Result<bool, StorageFailure> {
        match self.db.get_cf_opt(self.cf(CF_META)?, META_NOSPACE, &self.options()).map_err(storage)? {
            Some(bytes) => keys::decode(&bytes).map_err(storage),
            None => Ok(false),
        }
    }

    /// The leader's last lease checkpoint (`Command::LeaseCheckpoint`), empty before the first.
    pub fn lease_checkpoint(&self) -> Result<Vec<(i64, u64)>, StorageFailure> {
        match self.db.get_cf_opt(self.cf(CF_META)?, keys::META_LEASE_CHECKPOINT, &self.options()).map_err(storage)? {
            Some(bytes) => keys::decode(&bytes).map_err(storage),
            None => Ok(Vec::new()),
        }
    }

    /// The client URLs member `id` published (empty until it has).
    pub fn member_client_urls(&self, id: u64) -> Result<Vec<String>, StorageFailure> {
        match self.db.get_cf_opt(self.cf(CF_META)?, keys::member_key(id), &self.options()).map_err(storage)? {
            Some(bytes) => keys::decode(&bytes).map_err(storage),
            None => Ok(Vec::new()),
        }
    }

    pub fn compact_revision(&self) -> Result<i64, StorageFailure> {
        self.meta(META_COMPACT, 0)
    }

    pub fn lease(&self, id: i64) -> Result<Option<Lease>, StorageFailure> {
        match self.db.get_cf_opt(self.cf(CF_LEASES)?, keys::lease_key(id), &self.options()).map_err(storage)? {
            Some(bytes) => Ok(Some(keys::decode(&bytes).map_err(storage)?)),
            None => Ok(None),
        }
    }

    pub fn leases(&self) -> Result<Vec<Lease>, StorageFailure> {
        let iter = self.db.iterator_cf_opt(self.cf(CF_LEASES)?, self.options(), IteratorMode::Start);
        iter.map(|item| keys::decode(&item.map_err(storage)?.1).map_err(storage)).collect()
    }

    /// The keys attached to lease `id`, in key order.
    pub fn lease_keys(&self, id: i64) -> Result<Vec<Vec<u8>>, StorageFailure> {
        let prefix = keys::lease_key(id);
        let mut out = Vec::new();
        let iter = self.db.iterator_cf_opt(
            self.cf(CF_LEASE_KEYS)?,
            self.options(),
            IteratorMode::From(&prefix, Direction::Forward),
        );
        for item in iter {
            let (raw, _) = item.map_err(storage)?;
            if !raw.starts_with(&prefix) {
                break;
            }
            out.push(raw[prefix.len()..].to_vec());
        }
        Ok(out)
    }

    pub fn latest(&self, key: &[u8]) -> Result<Option<KeyValue>, StorageFailure> {
        match self.db.get_cf_opt(self.cf(CF_LATEST)?, key, &self.options()).map_err(storage)? {
            Some(bytes) => Ok(Some(keys::decode(&bytes).map_err(storage)?)),
            None => Ok(None),
        }
    }

    /// Live keys in `range`, in key order.
    pub fn scan_latest(&self, range: &KeyRange) -> Result<Vec<KeyValue>, StorageFailure> {
        if range.is_single() {
            return Ok(self.latest(&range.key)?.into_iter().collect());
        }
        let upper = range.upper();
        let mut out = Vec::new();
        let iter = self.db.iterator_cf_opt(
            self.cf(CF_LATEST)?,
            self.options(),
            IteratorMode::From(&range.key, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(storage)?;
            if upper.as_ref().is_some_and(|u| key.as_ref() >= u.as_slice()) {
                break;
            }
            out.push(keys::decode(&value).map_err(storage)?);
        }
        Ok(out)
    }

    /// Keys in `range` as they were at `revision`, in key order.
    pub fn scan_at(&self, range: &KeyRange, revision: i64) -> Result<Vec<KeyValue>, StorageFailure> {
        let start = keys::enc_key(&range.key);
        let upper = range.upper().map(|u| keys::enc_key(&u));
        let mut out = Vec::new();
        let mut current: Option<(Vec<u8>, Option<KeyValue>)> = None;
        let iter = self.db.iterator_cf_opt(
            self.cf(CF_HISTORY)?,
            self.options(),
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            let (raw, value) = item.map_err(storage)?;
            if upper.as_ref().is_some_and(|u| raw.as_ref() >= u.as_slice()) {
                break;
            }
            let (key, rev, _) = keys::split_history_key(&raw).ok_or_else(|| storage("malformed history key"))?;
            if current.as_ref().is_some_and(|(k, _)| *k != key) {
                out.extend(current.take().and_then(|(_, kv)| kv));
            }
            let entry = current.get_or_insert((key, None));
            if rev <= revision {
                entry.1 = match keys::decode::<Version>(&value).map_err(storage)? {
                    Version::Put(kv) => Some(kv),
                    Version::Tombstone => None,
                };
            }
        }
        out.extend(current.and_then(|(_, kv)| kv));
        Ok(out)
    }
}

/// Live keys in `range`, with `staged` writes of the command being applied taking precedence.
pub fn scan_merged(reader: &Reader<'_>, staged: &Staged, range: &KeyRange) -> Result<Vec<KeyValue>, StorageFailure> {
    let mut merged: BTreeMap<Vec<u8>, KeyValue> =
        reader.scan_latest(range)?.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
    for (key, kv) in staged.iter().filter(|(k, _)| range.contains(k)) {
        match kv {
            Some(kv) => merged.insert(key.clone(), kv.clone()),
            None => merged.remove(key),
        };
    }
    Ok(merged.into_values().collect())
}

/// Answers a range request. `staged` is set while applying a transaction.
pub fn range(reader: &Reader<'_>, staged: Option<&Staged>, request: &Range) -> Result<RangeResult, ReadError> {
    let current = reader.revision()?;
    let mut kvs = if request.revision <= 0 || request.revision == current {
        match staged {
            Some(staged) => scan_merged(reader, staged, &request.range)?,
            None => reader.scan_latest(&request.range)?,
        }
    } else if request.revision > current {
        return Err(MvccError::FutureRevision.into());
    } else {
        let compact_revision = reader.compact_revision()?;
        if request.revision < compact_revision {
            return Err(MvccError::Compacted { compact_revision }.into());
        }
        reader.scan_at(&request.range, request.revision)?
    };
    kvs.retain(|kv| {
        (request.min_mod_revision == 0 || kv.mod_revision >= request.min_mod_revision)
            && (request.max_mod_revision == 0 || kv.mod_revision <= request.max_mod_revision)
            && (request.min_create_revision == 0 || kv.create_revision >= request.min_create_revision)
            && (request.max_create_revision == 0 || kv.create_revision <= request.max_create_revision)
    });
    let count = kvs.len() as i64;
    sort(&mut kvs, request.sort_order, request.sort_target);
    let mut more = false;
    if request.limit > 0 && kvs.len() as i64 > request.limit {
        kvs.truncate(request.limit as usize);
        more = true;
    }
    if request.count_only {
        kvs.clear();
    } else if request.keys_only {
        kvs.iter_mut().for_each(|kv| kv.value.clear());
    }
    Ok(RangeResult { kvs, more, count })
}

fn sort(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    // Scans return key order already; etcd treats NONE as ascending by key.
    if order == SortOrder::None || (order == SortOrder::Ascend && target == SortTarget::Key) {
        return;
    }
    kvs.sort_by(|a, b| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    });
    if order == SortOrder::Descend {
        kvs.reverse();
    }
}
