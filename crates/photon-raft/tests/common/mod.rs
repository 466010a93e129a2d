//! A small key-value application used by photon-raft's own tests.

use std::collections::BTreeMap;

use photon_raft::rocksdb::{IteratorMode, WriteBatch, DB};
use photon_raft::{App, BoxError};
use serde::{Deserialize, Serialize};

pub const CF_KV: &str = "test_kv";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum KvRequest {
    Set { key: String, value: String },
}

#[derive(Debug, Default)]
pub struct KvApp;

fn cf(db: &DB) -> Result<&photon_raft::rocksdb::ColumnFamily, BoxError> {
    db.cf_handle(CF_KV).ok_or_else(|| "missing column family test_kv".into())
}

impl App for KvApp {
    type Request = KvRequest;
    /// The previous value of the key.
    type Response = Option<String>;

    fn apply(
        &mut self,
        db: &DB,
        batch: &mut WriteBatch,
        _index: u64,
        request: &KvRequest,
    ) -> Result<Option<String>, BoxError> {
        let KvRequest::Set { key, value } = request;
        let previous = db.get_cf(cf(db)?, key)?.map(|v| String::from_utf8_lossy(&v).into_owned());
        batch.put_cf(cf(db)?, key, value);
        Ok(previous)
    }

    fn snapshot(&self, db: &DB) -> Result<Vec<u8>, BoxError> {
        let mut all = BTreeMap::new();
        for item in db.iterator_cf(cf(db)?, IteratorMode::Start) {
            let (k, v) = item?;
            all.insert(k.to_vec(), v.to_vec());
        }
        Ok(bincode::serialize(&all)?)
    }

    fn restore(&mut self, db: &DB, batch: &mut WriteBatch, data: &[u8]) -> Result<(), BoxError> {
        let all: BTreeMap<Vec<u8>, Vec<u8>> = bincode::deserialize(data)?;
        let cf = cf(db)?;
        for item in db.iterator_cf(cf, IteratorMode::Start) {
            batch.delete_cf(cf, item?.0);
        }
        for (k, v) in all {
            batch.put_cf(cf, k, v);
        }
        Ok(())
    }
}

/// The value of `key` in `db`, as this node has applied it.
#[allow(dead_code)] // Not every test binary that includes this module reads values.
pub fn read(db: &DB, key: &str) -> Option<String> {
    let cf = db.cf_handle(CF_KV).expect("column family test_kv");
    db.get_cf(cf, key).expect("read from RocksDB").map(|v| String::from_utf8_lossy(&v).into_owned())
}
