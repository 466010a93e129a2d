//! The key-value operations, shared by the gRPC and REST APIs: validation, routing to the
//! region, and the read or proposal. Keys and results here are user keys of one namespace.

use bytes::Bytes;
use photon_raft::rocksdb::ReadOptions;

use crate::error::FlareError;
use crate::keys::{self, StoredRecord, StoredRecordRef, CF_DATA};
use crate::region::app::{stored, Applied, BatchEntry, Command};
use crate::store::Store;

/// A record as clients see it: user key, value, version, expiry (the API's own message).
pub use photon_api::flaredb::v1::Record;

fn from_stored(key: Vec<u8>, record: StoredRecord) -> Record {
    Record { key, value: record.value.into(), version: record.version, expires_at_ms: record.expires_at_ms }
}

/// What a scan asks for (see `ScanRequest` in the proto).
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub namespace: String,
    pub start: Vec<u8>,
    pub end: Vec<u8>,
    pub limit: usize,
    pub reverse: bool,
    pub keys_only: bool,
    /// Values cut to at most this many leading bytes (0: whole).
    pub value_prefix: usize,
    pub continuation: Vec<u8>,
}

/// Records one scan call returns, and where to go on (empty: done).
#[derive(Debug, Clone, Default)]
pub struct ScanPage {
    pub records: Vec<Record>,
    pub continuation: Vec<u8>,
}

fn expires_at(ttl_seconds: u64, now_ms: i64) -> i64 {
    if ttl_seconds == 0 {
        0
    } else {
        now_ms.saturating_add((ttl_seconds.min(i64::MAX as u64 / 1000) * 1000) as i64)
    }
}

fn unexpected(applied: Applied) -> FlareError {
    FlareError::Storage(format!("the region answered a different operation: {applied:?}"))
}

impl Store {
    pub async fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<Record>, FlareError> {
        let store_key = self.store_key(namespace, key)?;
        let region = self.region_for(&store_key)?;
        self.read_barrier(&region, namespace).await?;
        let now = keys::now_ms();
        Ok(stored(&self.db, &store_key)?.filter(|r| r.live_at(now)).map(|r| from_stored(key.to_vec(), r)))
    }

    pub async fn batch_get(&self, namespace: &str, keys: &[Vec<u8>]) -> Result<Vec<Record>, FlareError> {
        self.check_batch("BatchGet keys", keys.len())?;
        let mut records = Vec::with_capacity(keys.len());
        // One read barrier per region, not per key: every read after it sees every write
        // acknowledged before the batch arrived (the client batches concurrent gets).
        let mut confirmed = Vec::new();
        for key in keys {
            let store_key = self.store_key(namespace, key)?;
            let region = self.region_for(&store_key)?;
            let id = region.descriptor().id;
            if !confirmed.contains(&id) {
                self.read_barrier(&region, namespace).await?;
                confirmed.push(id);
            }
            let now = keys::now_ms();
            records
                .extend(stored(&self.db, &store_key)?.filter(|r| r.live_at(now)).map(|r| from_stored(key.clone(), r)));
        }
        Ok(records)
    }

    pub async fn put(&self, namespace: &str, key: &[u8], value: &[u8], ttl_seconds: u64) -> Result<u64, FlareError> {
        let store_key = self.store_key(namespace, key)?;
        self.check_value(value)?;
        let region = self.region_for(&store_key)?;
        let command = Command::Put {
            key: store_key,
            value: value.to_vec(),
            expires_at_ms: expires_at(ttl_seconds, keys::now_ms()),
        };
        match self.propose(&region, command).await? {
            Applied::Put { version } => Ok(version),
            other => Err(unexpected(other)),
        }
    }

    /// Writes every entry (key, value, ttl seconds) atomically; all keys must be in one region.
    /// A key listed twice is refused unless `in_order` says to write it twice, in order.
    pub async fn batch_put(
        &self,
        namespace: &str,
        entries: &[(Vec<u8>, Vec<u8>, u64)],
        in_order: bool,
    ) -> Result<Vec<u64>, FlareError> {
        self.check_batch("BatchPut entries", entries.len())?;
        let now = keys::now_ms();
        let mut staged = Vec::with_capacity(entries.len());
        let mut region = None;
        let mut seen = std::collections::HashSet::new();
        for (key, value, ttl) in entries {
            let store_key = self.store_key(namespace, key)?;
            self.check_value(value)?;
            if !in_order && !seen.insert(store_key.clone()) {
                return Err(FlareError::DuplicateKey(String::from_utf8_lossy(key).into_owned()));
            }
            let holder = self.region_for(&store_key)?;
            match &region {
                None => region = Some(holder),
                Some(first) if first.descriptor().id != holder.descriptor().id => {
                    return Err(FlareError::CrossRegion(first.descriptor().id, holder.descriptor().id))
                }
                Some(_) => {}
            }
            staged.push(BatchEntry { key: store_key, value: value.clone(), expires_at_ms: expires_at(*ttl, now) });
        }
        let Some(region) = region else { return Ok(Vec::new()) };
        match self.propose(&region, Command::BatchPut { entries: staged }).await? {
            Applied::BatchPut { versions } => Ok(versions),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes the key; the live record it held, if any.
    pub async fn delete(&self, namespace: &str, key: &[u8]) -> Result<Option<Record>, FlareError> {
        let store_key = self.store_key(namespace, key)?;
        let region = self.region_for(&store_key)?;
        match self.propose(&region, Command::Delete { key: store_key }).await? {
            Applied::Delete { previous } => Ok(previous.map(|r| from_stored(key.to_vec(), r))),
            other => Err(unexpected(other)),
        }
    }

    /// Writes only if the key's version is `expected_version` (0: absent). Whether it did, and
    /// the new record or the current one.
    pub async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &[u8],
        expected_version: u64,
        value: &[u8],
        ttl_seconds: u64,
    ) -> Result<(bool, Option<Record>), FlareError> {
        let store_key = self.store_key(namespace, key)?;
        self.check_value(value)?;
        let region = self.region_for(&store_key)?;
        let command = Command::CompareAndSwap {
            key: store_key,
            expected_version,
            value: value.to_vec(),
            expires_at_ms: expires_at(ttl_seconds, keys::now_ms()),
        };
        match self.propose(&region, command).await? {
            Applied::CompareAndSwap { succeeded, record } => {
                Ok((succeeded, record.map(|r| from_stored(key.to_vec(), r))))
            }
            other => Err(unexpected(other)),
        }
    }

    /// One page of keys in [start, end) of a namespace, within one region.
    pub async fn scan(&self, scan: &Scan) -> Result<ScanPage, FlareError> {
        self.consistency(&scan.namespace)?;
        if !scan.end.is_empty() && scan.start > scan.end {
            return Err(FlareError::InvertedRange {
                start: String::from_utf8_lossy(&scan.start).into_owned(),
                end: String::from_utf8_lossy(&scan.end).into_owned(),
            });
        }
        let limit = match scan.limit {
            0 => self.limits.max_batch,
            n => n.min(self.limits.max_batch),
        };
        let mut from = keys::store_key(&scan.namespace, &scan.start);
        let mut to = if scan.end.is_empty() {
            keys::namespace_end(&scan.namespace)
        } else {
            keys::store_key(&scan.namespace, &scan.end)
        };
        // A continuation is the store key to resume at (forward) or before (reverse).
        if !scan.continuation.is_empty() {
            if scan.continuation < from || scan.continuation > to {
                return Err(FlareError::InvalidArgument("continuation does not belong to this scan".into()));
            }
            if scan.reverse {
                to = scan.continuation.clone();
            } else {
                from = scan.continuation.clone();
            }
        }
        if from >= to {
            return Ok(ScanPage::default());
        }
        // The region holding the first key this page reads.
        let region = if scan.reverse { self.region_before(&to)? } else { self.region_for(&from)? };
        self.read_barrier(&region, &scan.namespace).await?;
        let descriptor = region.descriptor();
        let lower = from.clone().max(descriptor.start_key.clone());
        let upper = if descriptor.end_key.is_empty() { to.clone() } else { to.clone().min(descriptor.end_key.clone()) };

        let cf = self.db.cf_handle(CF_DATA).ok_or_else(|| FlareError::Storage("missing column family data".into()))?;
        // Bounds let RocksDB stop at the range's ends instead of stepping over the tombstones
        // of deleted keys beyond them (a listing after a mass delete otherwise walks them all).
        let mut bounds = ReadOptions::default();
        bounds.set_iterate_lower_bound(lower.clone());
        bounds.set_iterate_upper_bound(upper.clone());
        let now = keys::now_ms();
        let mut page = ScanPage { records: Vec::with_capacity(limit.min(1024)), continuation: Vec::new() };
        // The raw iterator lends each key and value in place (the plain one copies both out).
        let mut it = self.db.raw_iterator_cf_opt(cf, bounds);
        if scan.reverse {
            it.seek_for_prev(&upper);
        } else {
            it.seek(&lower);
        }
        // Reverse scans resume before the last key they stepped on.
        let mut last = Vec::new();
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            if key >= upper.as_slice() {
                if scan.reverse {
                    it.prev(); // A reverse seek lands at `upper` itself when it exists: exclusive.
                    continue;
                }
                break;
            }
            if key < lower.as_slice() {
                break;
            }
            if page.records.len() == limit {
                page.continuation = if scan.reverse { last } else { key.to_vec() };
                return Ok(page);
            }
            let record: StoredRecordRef = photon_raft::decode(value).map_err(|e| FlareError::Storage(e.to_string()))?;
            if scan.reverse {
                last.clear();
                last.extend_from_slice(key);
            }
            if record.live_at(now) {
                if let Some(user_key) = keys::user_key(key, &scan.namespace) {
                    let value = match (scan.keys_only, scan.value_prefix) {
                        (true, _) => Default::default(),
                        (false, 0) => Bytes::copy_from_slice(record.value),
                        (false, n) => Bytes::copy_from_slice(&record.value[..n.min(record.value.len())]),
                    };
                    let (version, expires_at_ms) = (record.version, record.expires_at_ms);
                    page.records.push(Record { key: user_key.to_vec(), value, version, expires_at_ms });
                }
            }
            if scan.reverse {
                it.prev();
            } else {
                it.next();
            }
        }
        it.status().map_err(|e| FlareError::Storage(e.to_string()))?;
        // This region is done; the scan goes on in the next one if the range does.
        page.continuation = if scan.reverse {
            if descriptor.start_key.as_slice() > from.as_slice() {
                descriptor.start_key
            } else {
                Vec::new()
            }
        } else if !descriptor.end_key.is_empty() && descriptor.end_key < to {
            descriptor.end_key
        } else {
            Vec::new()
        };
        Ok(page)
    }

    /// The region holding the keys just before store key `key`.
    fn region_before(&self, key: &[u8]) -> Result<crate::store::Region, FlareError> {
        self.regions()
            .into_iter()
            .find(|r| {
                let d = r.descriptor();
                d.start_key.as_slice() < key && (d.end_key.is_empty() || key <= d.end_key.as_slice())
            })
            .ok_or(FlareError::WrongRegion)
    }

    fn check_batch(&self, what: &'static str, len: usize) -> Result<(), FlareError> {
        if len > self.limits.max_batch {
            return Err(FlareError::TooMany { what, len, max: self.limits.max_batch });
        }
        Ok(())
    }
}
