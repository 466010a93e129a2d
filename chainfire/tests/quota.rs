//! The backend quota: past it, writes that add data are refused with etcd's NOSPACE error and
//! the alarm is raised; compaction, defragmentation and disarming bring writes back.

use std::process::Command;
use std::time::Duration;

use photon_testkit::{free_port, TestServer};

fn etcdctl(server: &TestServer, args: &[&str]) -> (bool, String) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", server.url()))
        .arg(format!("--cacert={}", server.ca().display()))
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn nospace_refuses_writes_until_space_is_freed_and_the_alarm_disarmed() {
    let raft = format!("127.0.0.1:{}", free_port());
    let mut server = TestServer::new("chainfire-server", &["--raft-listen", &raft]);
    server.process.env("CHAINFIRE_LIMITS_QUOTA_BACKEND_BYTES", (4 << 20).to_string()).start();
    server.wait_healthy(Duration::from_secs(30)).await;

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
