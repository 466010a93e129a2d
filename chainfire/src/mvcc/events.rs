//! Reading the event history: every change with revision in a window, in revision order, as
//! watchers see it. Deletions carry the key and the deleting revision, as in etcd.

use photon_raft::rocksdb::{Direction, IteratorMode};

use super::keys::{self, CF_EVENTS, CF_HISTORY};
use super::model::{KeyRange, KeyValue, Version};
use super::read::{storage, Reader, StorageFailure};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    /// The key's version before this change, when asked for and still in history.
    pub prev: Option<KeyValue>,
}

/// Events of keys in `range` with revision in `from..=to`.
pub fn events(
    reader: &Reader<'_>,
    from: i64,
    to: i64,
    range: &KeyRange,
    with_prev: bool,
) -> Result<Vec<Event>, StorageFailure> {
    let mut out = Vec::new();
    if from > to {
        return Ok(out);
    }
    let db = reader.db();
    let start = keys::rev_bytes(from.max(0), 0);
    for item in
        db.iterator_cf_opt(reader.cf(CF_EVENTS)?, reader.options(), IteratorMode::From(&start, Direction::Forward))
    {
        let (raw_rev, key) = item.map_err(storage)?;
        let (rev, sub) = keys::parse_rev(&raw_rev).ok_or_else(|| storage("malformed event key"))?;
        if rev > to {
            break;
        }
        if !range.contains(&key) {
            continue;
        }
        let history_key = keys::history_key(&key, rev, sub);
        let Some(bytes) = db.get_cf_opt(reader.cf(CF_HISTORY)?, &history_key, &reader.options()).map_err(storage)?
        else {
            continue; // compacted away concurrently; the watcher is told by its compaction check
        };
        let (kind, kv) = match keys::decode::<Version>(&bytes).map_err(storage)? {
            Version::Put(kv) => (EventKind::Put, kv),
            Version::Tombstone => (
                EventKind::Delete,
                KeyValue {
                    key: key.to_vec(),
                    value: Vec::new(),
                    create_revision: 0,
                    mod_revision: rev,
                    version: 0,
                    lease: 0,
                },
            ),
        };
        let prev = if with_prev { previous_version(reader, &history_key, &key)? } else { None };
        out.push(Event { kind, kv, prev });
    }
    Ok(out)
}

/// The version of `key` just before the history entry `history_key`, if it was a put.
fn previous_version(reader: &Reader<'_>, history_key: &[u8], key: &[u8]) -> Result<Option<KeyValue>, StorageFailure> {
    let iter = reader.db().iterator_cf_opt(
        reader.cf(CF_HISTORY)?,
        reader.options(),
        IteratorMode::From(history_key, Direction::Reverse),
    );
    for item in iter {
        let (raw, value) = item.map_err(storage)?;
        if raw.as_ref() == history_key {
            continue;
        }
        let (found_key, _, _) = keys::split_history_key(&raw).ok_or_else(|| storage("malformed history key"))?;
        if found_key != key {
            return Ok(None);
        }
        return Ok(match keys::decode::<Version>(&value).map_err(storage)? {
            Version::Put(kv) => Some(kv),
            Version::Tombstone => None,
        });
    }
    Ok(None)
}
