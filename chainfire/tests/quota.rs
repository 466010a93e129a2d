//! The backend quota: past it, writes that add data are refused with etcd's NOSPACE error and
//! the alarm is raised; compaction, defragmentation and disarming bring writes back.

mod common;

use common::{etcdctl, single};

#[tokio::test]
async fn nospace_refuses_writes_until_space_is_freed_and_the_alarm_disarmed() {
    let quota = (4 << 20).to_string();
    let server = single(&[("CHAINFIRE_LIMITS_QUOTA_BACKEND_BYTES", &quota)]).await;

    let value = "x".repeat(64 * 1024);
    let mut refused = None;
    for i in 0..300 {
        let (success, out) = etcdctl(&server, &["put", "big", &value]);
        if !success {
            refused = Some((i, out));
            break;
        }
    }
    let (writes, message) = refused.expect("the quota was never enforced");
    assert!(
        writes > 0 && message.contains("etcdserver: mvcc: database space exceeded"),
        "after {writes} writes: {message}"
    );
    assert!(etcdctl(&server, &["alarm", "list"]).1.contains("alarm:NOSPACE"));
    assert!(
        etcdctl(&server, &["put", "tiny", "x"]).1.contains("database space exceeded"),
        "every write that adds data is refused"
    );
    let (success, out) = etcdctl(&server, &["get", "big", "--print-value-only"]);
    assert!(success && out.trim().len() == value.len(), "reads still work");
    assert!(etcdctl(&server, &["del", "nothing-here"]).0, "deletes still work");

    let (_, status) = etcdctl(&server, &["get", "big", "-w", "json"]);
    let revision = serde_json::from_str::<serde_json::Value>(&status).unwrap()["header"]["revision"].as_i64().unwrap();
    assert!(etcdctl(&server, &["compaction", &revision.to_string()]).0);
    assert!(etcdctl(&server, &["defrag"]).0);
    assert!(etcdctl(&server, &["alarm", "disarm"]).0);
    assert_eq!(etcdctl(&server, &["alarm", "list"]).1.trim(), "");
    let (success, out) = etcdctl(&server, &["put", "tiny", "x"]);
    assert!(success, "writes are back once space is freed and the alarm disarmed: {out}");
}
