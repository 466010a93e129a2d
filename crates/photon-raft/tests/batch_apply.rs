//! Batched entries: the commands of one log entry apply in order, each seeing the ones before
//! it, and a node stopped partway through an entry resumes after the last command it wrote
//! instead of applying the first ones twice.

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use photon_raft::rocksdb::{WriteBatch, DB};
use photon_raft::{App, Batch, BoxError, Storage, TypeConfig};

const CF_COUNTS: &str = "counts";

/// Counts increments per key: applying a command twice would show.
#[derive(Default)]
struct Counter {
    /// Fails (as a crash would stop the node) when asked to increment this key.
    crash_on: Option<String>,
}

fn count(db: &DB, key: &str) -> u64 {
    let cf = db.cf_handle(CF_COUNTS).expect("column family");
    db.get_cf(cf, key).expect("read").map_or(0, |v| u64::from_be_bytes(v.as_slice().try_into().expect("8 bytes")))
}

impl App for Counter {
    type Request = String;
    type Response = u64;

    fn apply(&mut self, db: &DB, batch: &mut WriteBatch, _index: u64, key: &String) -> Result<u64, BoxError> {
        if self.crash_on.as_ref() == Some(key) {
            return Err("simulated crash".into());
        }
        let next = count(db, key) + 1;
        batch.put_cf(db.cf_handle(CF_COUNTS).ok_or("missing column family")?, key, next.to_be_bytes());
        Ok(next)
    }

    /// Distinct keys never read each other's writes: one write batch for the entry.
    fn independent(&self, keys: &[String]) -> bool {
        let mut seen = std::collections::HashSet::new();
        keys.iter().all(|k| seen.insert(k))
    }

    fn snapshot(&self, _db: &DB) -> Result<Vec<u8>, BoxError> {
        Ok(Vec::new())
    }

    fn restore(&mut self, _db: &DB, _batch: &mut WriteBatch, _data: &[u8]) -> Result<(), BoxError> {
        Ok(())
    }
}

fn entry(index: u64, keys: &[&str]) -> Entry<TypeConfig<Counter>> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Batch(keys.iter().map(|k| k.to_string()).collect())),
    }
}

#[tokio::test]
async fn commands_in_one_entry_see_each_other_and_answer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), &[CF_COUNTS]).unwrap();
    let (_, mut sm) = storage.group(1, Counter::default()).unwrap();
    let responses = sm.apply([entry(1, &["a", "a", "b"]), entry(2, &["a"])]).await.unwrap();
    assert_eq!(responses, vec![vec![1, 2, 1], vec![3]]);
    assert_eq!(sm.applied_state().await.unwrap().0.map(|l| l.index), Some(2));
}

#[tokio::test]
async fn an_entry_cut_short_resumes_without_applying_a_command_twice() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::open(dir.path(), &[CF_COUNTS]).unwrap();
        let crashing = Counter { crash_on: Some("stop".into()) };
        let (_, mut sm) = storage.group(1, crashing).unwrap();
        sm.apply([entry(1, &["a"])]).await.unwrap();
        assert!(sm.apply([entry(2, &["a", "b", "stop", "b"])]).await.is_err());
        // Entry 2 is not applied as a whole: Raft will hand it over again.
        assert_eq!(sm.applied_state().await.unwrap().0.map(|l| l.index), Some(1));
    }
    let storage = Storage::open(dir.path(), &[CF_COUNTS]).unwrap();
    let (_, mut sm) = storage.group(1, Counter::default()).unwrap();
    assert_eq!(sm.applied_state().await.unwrap().0.map(|l| l.index), Some(1));
    sm.apply([entry(2, &["a", "b", "stop", "b"])]).await.unwrap();
    let db = storage.db();
    assert_eq!((count(db, "a"), count(db, "b"), count(db, "stop")), (2, 2, 1), "each command applied exactly once");
    assert_eq!(sm.applied_state().await.unwrap().0.map(|l| l.index), Some(2));
    // The next entry starts from its first command again.
    sm.apply([entry(3, &["a"])]).await.unwrap();
    assert_eq!(count(db, "a"), 3);
}

#[tokio::test]
async fn an_entry_of_independent_commands_is_one_atomic_write() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::open(dir.path(), &[CF_COUNTS]).unwrap();
        let (_, mut sm) = storage.group(1, Counter { crash_on: Some("y".into()) }).unwrap();
        assert_eq!(sm.apply([entry(1, &["w"])]).await.unwrap(), vec![vec![1]]);
        // "y" fails in the middle of an independent entry: none of it is written.
        assert!(sm.apply([entry(2, &["x", "y", "z"])]).await.is_err());
        assert_eq!((count(storage.db(), "x"), count(storage.db(), "z")), (0, 0));
        assert_eq!(sm.applied_state().await.unwrap().0.map(|l| l.index), Some(1));
    }
    let storage = Storage::open(dir.path(), &[CF_COUNTS]).unwrap();
    let (_, mut sm) = storage.group(1, Counter::default()).unwrap();
    assert_eq!(sm.apply([entry(2, &["x", "y", "z"])]).await.unwrap(), vec![vec![1, 1, 1]]);
    assert_eq!(sm.applied_state().await.unwrap().0.map(|l| l.index), Some(2));
}
