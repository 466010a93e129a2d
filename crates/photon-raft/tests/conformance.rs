//! openraft's storage conformance suite against photon-raft's RocksDB log and state machine,
//! plus the guarantee that groups sharing one database never see each other's data.

mod common;

use common::{KvApp, CF_KV};
use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{Entry, EntryPayload, LogId, StorageError};
use photon_raft::{LogStore, NodeId, StateMachine, Storage, TypeConfig};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig<KvApp>, LogStore<KvApp>, StateMachine<KvApp>, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore<KvApp>, StateMachine<KvApp>), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(dir.path(), &[CF_KV]).expect("open storage");
        let (log, sm) = storage.group(7, KvApp).expect("group");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("the storage conformance suite passes");
}

fn blank(term: u64, index: u64) -> Entry<TypeConfig<KvApp>> {
    Entry { log_id: LogId::new(openraft::CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
}

#[tokio::test]
async fn groups_sharing_a_database_are_independent_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::open(dir.path(), &[CF_KV]).unwrap();
        let (mut a, _) = storage.group(1, KvApp).unwrap();
        let (mut b, _) = storage.group(2, KvApp).unwrap();
        a.blocking_append((1..=10).map(|i| blank(1, i))).await.unwrap();
        b.blocking_append((1..=5).map(|i| blank(1, i))).await.unwrap();
        a.purge(LogId::new(openraft::CommittedLeaderId::new(1, 1), 4)).await.unwrap();
        b.truncate(LogId::new(openraft::CommittedLeaderId::new(1, 1), 3)).await.unwrap();
    }
    // Reopen: what was acknowledged is still there, per group.
    let storage = Storage::open(dir.path(), &[CF_KV]).unwrap();
    let (mut a, _) = storage.group(1, KvApp).unwrap();
    let (mut b, _) = storage.group(2, KvApp).unwrap();
    let a_entries = a.try_get_log_entries(0..100).await.unwrap();
    let b_entries = b.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(a_entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), (5..=10).collect::<Vec<_>>());
    assert_eq!(b_entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![1, 2]);
    let state = a.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(4));
    assert_eq!(state.last_log_id.map(|l| l.index), Some(10));
}
