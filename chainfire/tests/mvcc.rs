//! MVCC semantics as etcd defines them, applied straight to RocksDB (no Raft): revisions,
//! versions, ranges, history, transactions, compaction, snapshots.

use chainfire::mvcc::keys::ALL_CFS;
use chainfire::mvcc::model::*;
use chainfire::mvcc::read::{range, Reader};
use chainfire::mvcc::MvccApp;
use photon_raft::rocksdb::WriteBatch;
use photon_raft::{App, Storage};

struct Store {
    _dir: tempfile::TempDir,
    storage: Storage,
    app: MvccApp,
}

fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), &ALL_CFS).unwrap();
    Store { _dir: dir, storage, app: MvccApp::default() }
}

fn put(key: &str, value: &str) -> Put {
    Put { key: key.into(), value: value.into(), lease: 0, prev_kv: true, ignore_value: false, ignore_lease: false }
}

fn single(key: &str) -> KeyRange {
    KeyRange { key: key.into(), end: Vec::new() }
}

fn prefix(p: &str) -> KeyRange {
    let mut end = p.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    KeyRange { key: p.into(), end }
}

impl Store {
    fn apply(&mut self, command: Command) -> Applied {
        let db = self.storage.db();
        let mut batch = WriteBatch::default();
        let applied = self.app.apply(db, &mut batch, 0, &command).unwrap();
        db.write(batch).unwrap();
        applied
    }

    fn read(&self, request: Range) -> Result<RangeResult, String> {
        range(&Reader::new(self.storage.db(), None), None, &request).map_err(|e| e.to_string())
    }

    fn get(&self, key: &str) -> Option<KeyValue> {
        self.read(Range { range: single(key), ..Default::default() }).unwrap().kvs.pop()
    }

    fn get_at(&self, key: &str, revision: i64) -> Result<Option<KeyValue>, String> {
        Ok(self.read(Range { range: single(key), revision, ..Default::default() })?.kvs.pop())
    }
}

#[test]
fn revisions_and_versions_follow_etcd() {
    let mut s = store();
    assert_eq!(Reader::new(s.storage.db(), None).revision().unwrap(), 1, "an empty store is at revision 1");
    assert_eq!(s.apply(Command::Put(put("a", "1"))).revision, 2);
    let a = s.get("a").unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 2, 1));

    let applied = s.apply(Command::Put(put("a", "2")));
    assert_eq!(applied.revision, 3);
    assert_eq!(
        applied.result,
        Some(Ok(Outcome::Op(OpResult::Put { prev: Some(a.clone()) }))),
        "prev_kv returns the old version"
    );
    let a = s.get("a").unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version, a.value.as_slice()), (2, 3, 2, &b"2"[..]));

    let deleted = s.apply(Command::DeleteRange(DeleteRange { range: single("a"), prev_kv: false }));
    assert_eq!(deleted.revision, 4);
    assert!(s.get("a").is_none());
    let nothing = s.apply(Command::DeleteRange(DeleteRange { range: single("a"), prev_kv: false }));
    assert_eq!(nothing.revision, 4, "deleting nothing does not advance the revision");

    s.apply(Command::Put(put("a", "3")));
    let a = s.get("a").unwrap();
    assert_eq!((a.create_revision, a.version), (5, 1), "a recreated key starts a new generation");
}

#[test]
fn ranges_filter_sort_limit_and_count() {
    let mut s = store();
    for (k, v) in [("foo/a", "3"), ("foo/b", "1"), ("foo/c", "2"), ("fop", "x"), ("bar", "y")] {
        s.apply(Command::Put(put(k, v)));
    }
    let all = s.read(Range { range: prefix("foo/"), ..Default::default() }).unwrap();
    assert_eq!(
        all.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![b"foo/a".to_vec(), b"foo/b".to_vec(), b"foo/c".to_vec()]
    );
    assert_eq!((all.count, all.more), (3, false));

    let limited = s.read(Range { range: prefix("foo/"), limit: 2, ..Default::default() }).unwrap();
    assert_eq!((limited.kvs.len(), limited.count, limited.more), (2, 3, true));

    let by_value = s
        .read(Range {
            range: prefix("foo/"),
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Value,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        by_value.kvs.iter().map(|kv| kv.value.clone()).collect::<Vec<_>>(),
        vec![b"3".to_vec(), b"2".to_vec(), b"1".to_vec()]
    );

    let everything = s
        .read(Range { range: KeyRange { key: vec![0], end: vec![0] }, count_only: true, ..Default::default() })
        .unwrap();
    assert_eq!((everything.count, everything.kvs.len()), (5, 0));

    let keys_only = s.read(Range { range: single("bar"), keys_only: true, ..Default::default() }).unwrap();
    assert!(keys_only.kvs[0].value.is_empty());

    let from_fop =
        s.read(Range { range: KeyRange { key: b"fop".to_vec(), end: vec![0] }, ..Default::default() }).unwrap();
    assert_eq!(from_fop.count, 1, "end \\0 means every key from `key` on");
}

#[test]
fn history_compaction_and_future_revisions() {
    let mut s = store();
    s.apply(Command::Put(put("k", "v1"))); // rev 2
    s.apply(Command::Put(put("k", "v2"))); // rev 3
    s.apply(Command::DeleteRange(DeleteRange { range: single("k"), prev_kv: false })); // rev 4
    s.apply(Command::Put(put("k", "v3"))); // rev 5
    s.apply(Command::Put(put("other", "o"))); // rev 6

    assert_eq!(s.get_at("k", 2).unwrap().unwrap().value, b"v1");
    assert_eq!(s.get_at("k", 3).unwrap().unwrap().value, b"v2");
    assert!(s.get_at("k", 4).unwrap().is_none(), "deleted at 4");
    assert_eq!(s.get_at("k", 5).unwrap().unwrap().value, b"v3");
    assert_eq!(s.get_at("k", 7).unwrap_err(), "etcdserver: mvcc: required revision is a future revision");

    let compacted = s.apply(Command::Compact { revision: 3 });
    assert_eq!(compacted.revision, 6, "compaction does not advance the revision");
    assert_eq!(s.get_at("k", 3).unwrap().unwrap().value, b"v2", "the compaction revision itself stays readable");
    assert_eq!(s.get_at("k", 2).unwrap_err(), "etcdserver: mvcc: required revision has been compacted");
    assert_eq!(s.get_at("k", 5).unwrap().unwrap().value, b"v3");
    assert_eq!(s.get_at("other", 6).unwrap().unwrap().value, b"o");

    let again = s.apply(Command::Compact { revision: 3 });
    assert_eq!(again.result, Some(Err(MvccError::Compacted { compact_revision: 3 })));
    let future = s.apply(Command::Compact { revision: 99 });
    assert_eq!(future.result, Some(Err(MvccError::FutureRevision)));

    // Compacting past a deletion removes the deleted key's history entirely.
    s.apply(Command::Compact { revision: 4 });
    assert!(s.get_at("k", 4).unwrap().is_none());
    assert_eq!(s.get_at("k", 5).unwrap().unwrap().value, b"v3");
}

#[test]
fn transactions_compare_then_branch_atomically() {
    let mut s = store();
    s.apply(Command::Put(put("lock", "free")));
    let cas = |expected: &str, new: &str| Txn {
        compare: vec![Compare {
            range: single("lock"),
            op: CompareOp::Equal,
            target: CompareTarget::Value(expected.into()),
        }],
        success: vec![Op::Put(put("lock", new)), Op::Range(Range { range: single("lock"), ..Default::default() })],
        failure: vec![Op::Range(Range { range: single("lock"), ..Default::default() })],
    };
    let won = s.apply(Command::Txn(cas("free", "taken")));
    match won.result {
        Some(Ok(Outcome::Op(OpResult::Txn { succeeded: true, results }))) => match &results[1] {
            OpResult::Range(r) => assert_eq!(r.kvs[0].value, b"taken", "a range in the txn sees the txn's own put"),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let lost = s.apply(Command::Txn(cas("free", "stolen")));
    assert!(matches!(lost.result, Some(Ok(Outcome::Op(OpResult::Txn { succeeded: false, .. })))));
    assert_eq!(lost.revision, won.revision, "a failed compare with a read-only branch writes nothing");
    assert_eq!(s.get("lock").unwrap().value, b"taken");

    // A missing key compares as version 0 and fails any value comparison.
    let create_if_absent = Txn {
        compare: vec![Compare { range: single("new"), op: CompareOp::Equal, target: CompareTarget::Version(0) }],
        success: vec![Op::Put(put("new", "1")), Op::Put(put("new2", "2"))],
        failure: vec![],
    };
    let created = s.apply(Command::Txn(create_if_absent.clone()));
    assert!(matches!(created.result, Some(Ok(Outcome::Op(OpResult::Txn { succeeded: true, .. })))));
    let (a, b) = (s.get("new").unwrap(), s.get("new2").unwrap());
    assert_eq!(a.mod_revision, b.mod_revision, "all writes of one txn share its revision");
    let second = s.apply(Command::Txn(create_if_absent));
    assert!(matches!(second.result, Some(Ok(Outcome::Op(OpResult::Txn { succeeded: false, .. })))));
}

#[test]
fn refused_commands_change_nothing() {
    let mut s = store();
    s.apply(Command::Put(put("x", "1")));
    let before = Reader::new(s.storage.db(), None).revision().unwrap();
    let mut ignore = put("missing", "");
    ignore.ignore_value = true;
    let txn = Txn { compare: vec![], success: vec![Op::Put(put("y", "written?")), Op::Put(ignore)], failure: vec![] };
    let refused = s.apply(Command::Txn(txn));
    assert_eq!(refused.result, Some(Err(MvccError::KeyNotFound)));
    assert_eq!(refused.revision, before);
    assert!(s.get("y").is_none(), "the txn's earlier put was not kept");
    let mut leased = put("z", "v");
    leased.lease = 42;
    assert_eq!(s.apply(Command::Put(leased)).result, Some(Err(MvccError::LeaseNotFound)));
}

#[test]
fn snapshot_restores_into_an_empty_store() {
    let mut a = store();
    for i in 0..50 {
        a.apply(Command::Put(put(&format!("k{i:02}"), &format!("v{i}"))));
    }
    a.apply(Command::DeleteRange(DeleteRange { range: prefix("k1"), prev_kv: false }));
    let data = a.app.snapshot(a.storage.db()).unwrap();

    let mut b = store();
    b.apply(Command::Put(put("stale", "gone after restore")));
    let mut batch = WriteBatch::default();
    b.app.restore(b.storage.db(), &mut batch, &data).unwrap();
    b.storage.db().write(batch).unwrap();
    assert!(b.get("stale").is_none());
    assert_eq!(b.get("k42").unwrap(), a.get("k42").unwrap());
    assert!(b.get("k15").is_none());
    let rev = |s: &Store| Reader::new(s.storage.db(), None).revision().unwrap();
    assert_eq!(rev(&a), rev(&b));
    assert_eq!(b.get_at("k15", 20).unwrap(), a.get_at("k15", 20).unwrap(), "history came along");
}

#[test]
fn events_replay_puts_and_deletes_in_revision_order_with_prev_kv() {
    use chainfire::mvcc::events::{events, EventKind};
    let mut s = store();
    s.apply(Command::Put(put("w/a", "1"))); // 2
    s.apply(Command::Put(put("w/b", "x"))); // 3
    s.apply(Command::Put(put("w/a", "2"))); // 4
    s.apply(Command::DeleteRange(DeleteRange { range: single("w/a"), prev_kv: false })); // 5
    s.apply(Command::Put(put("zzz", "z"))); // 6
    let reader = Reader::new(s.storage.db(), None);
    let all = events(&reader, 1, 6, &prefix("w/"), true).unwrap();
    let summary: Vec<(EventKind, Vec<u8>, i64)> =
        all.iter().map(|e| (e.kind, e.kv.key.clone(), e.kv.mod_revision)).collect();
    assert_eq!(
        summary,
        vec![
            (EventKind::Put, b"w/a".to_vec(), 2),
            (EventKind::Put, b"w/b".to_vec(), 3),
            (EventKind::Put, b"w/a".to_vec(), 4),
            (EventKind::Delete, b"w/a".to_vec(), 5)
        ]
    );
    assert_eq!(all[2].prev.as_ref().map(|p| p.value.clone()), Some(b"1".to_vec()));
    assert_eq!(
        all[3].prev.as_ref().map(|p| p.value.clone()),
        Some(b"2".to_vec()),
        "a delete's prev_kv is the deleted value"
    );
    assert!(all[0].prev.is_none());
    assert_eq!(events(&reader, 5, 6, &single("w/a"), false).unwrap().len(), 1);
    assert!(events(&reader, 7, 10, &prefix("w/"), false).unwrap().is_empty());
}

#[test]
fn leases_attach_detach_and_revoke_at_one_revision() {
    let mut s = store();
    assert!(matches!(s.apply(Command::LeaseGrant { id: 7, ttl: 10 }).result, Some(Ok(Outcome::LeaseGranted(_)))));
    assert_eq!(s.apply(Command::LeaseGrant { id: 7, ttl: 10 }).result, Some(Err(MvccError::LeaseExists)));
    let leased = |key: &str| Put { lease: 7, ..put(key, "v") };
    s.apply(Command::Put(leased("a")));
    s.apply(Command::Put(leased("b")));
    s.apply(Command::Put(leased("c")));
    s.apply(Command::Put(put("b", "unleased"))); // detaches b
    s.apply(Command::DeleteRange(DeleteRange { range: single("c"), prev_kv: false })); // detaches c
    let reader = Reader::new(s.storage.db(), None);
    assert_eq!(reader.lease_keys(7).unwrap(), vec![b"a".to_vec()]);

    let before = Reader::new(s.storage.db(), None).revision().unwrap();
    let revoked = s.apply(Command::LeaseRevoke { id: 7 });
    assert_eq!(revoked.result, Some(Ok(Outcome::LeaseRevoked { deleted: 1 })));
    assert_eq!(revoked.revision, before + 1);
    assert!(s.get("a").is_none());
    assert_eq!(s.get("b").unwrap().value, b"unleased");
    assert!(Reader::new(s.storage.db(), None).lease(7).unwrap().is_none());
    assert_eq!(s.apply(Command::LeaseRevoke { id: 7 }).result, Some(Err(MvccError::LeaseNotFound)));
}
