//! Compaction: forget history older than a revision, keeping for each key the newest version
//! at or before it (so reads at the compaction revision still work). Done in the applying
//! batch, so every replica compacts at the same log position.

use photon_raft::rocksdb::{IteratorMode, WriteBatch, DB};

use super::keys::{self, CF_EVENTS, CF_HISTORY, CF_META, META_COMPACT};
use super::model::{MvccError, Version};
use super::read::{storage, ReadError, Reader};

pub fn compact(db: &DB, batch: &mut WriteBatch, revision: i64) -> Result<(), ReadError> {
    let reader = Reader::new(db, None);
    let compact_revision = reader.compact_revision()?;
    if revision <= compact_revision {
        return Err(MvccError::Compacted { compact_revision }.into());
    }
    if revision > reader.revision()? {
        return Err(MvccError::FutureRevision.into());
    }
    let cf = |name: &str| db.cf_handle(name).ok_or_else(|| storage(format!("missing column family {name}")));
    let (history, events, meta) = (cf(CF_HISTORY)?, cf(CF_EVENTS)?, cf(CF_META)?);
    // Per key, among versions at or before `revision`, all but the newest go; the newest
    // goes too if it is a tombstone.
    let mut pending: Option<(Vec<u8>, Vec<u8>, bool)> = None; // (user key, raw key, is tombstone)
    for item in db.iterator_cf(history, IteratorMode::Start) {
        let (raw, value) = item.map_err(storage)?;
        let (key, rev, _) = keys::split_history_key(&raw).ok_or_else(|| storage("malformed history key"))?;
        if let Some((pending_key, pending_raw, tombstone)) = pending.take() {
            let superseded = pending_key == key && rev <= revision;
            if superseded || tombstone {
                batch.delete_cf(history, pending_raw);
            }
        }
        if rev <= revision {
            let tombstone = matches!(keys::decode::<Version>(&value).map_err(storage)?, Version::Tombstone);
            pending = Some((key, raw.to_vec(), tombstone));
        }
    }
    if let Some((_, raw, true)) = pending {
        batch.delete_cf(history, raw);
    }
    batch.delete_range_cf(events, keys::rev_bytes(0, 0), keys::rev_bytes(revision, 0));
    batch.put_cf(meta, META_COMPACT, keys::encode(&revision).map_err(storage)?);
    Ok(())
}
