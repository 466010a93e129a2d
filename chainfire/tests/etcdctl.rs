//! Real etcdctl (Debian's etcd-client, API v3) against a real chainfire-server.

use std::process::{Command, Output};
use std::time::Duration;

use photon_testkit::{free_port, TestServer};

struct Chainfire {
    server: TestServer,
}

impl Chainfire {
    async fn start() -> Self {
        let raft = format!("127.0.0.1:{}", free_port());
        let mut server = TestServer::start("chainfire-server", &["--raft-listen", &raft]);
        let health = server.wait_healthy(Duration::from_secs(30)).await;
        assert_eq!(health["raft"], "leader");
        assert_eq!(health["cluster_size"], 1);
        Self { server }
    }

    fn etcdctl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.server.url()))
            .arg(format!("--cacert={}", self.server.ca().display()))
            .arg("--command-timeout=10s")
            .args(args);
        match stdin {
            None => command.output().expect("etcdctl must be installed (scripts/setup installs etcd-client)"),
            Some(input) => {
                use std::io::Write;
                let mut child = command
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
                child.wait_with_output().unwrap()
            }
        }
    }

    /// Runs etcdctl, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.etcdctl(args, None);
        assert!(out.status.success(), "etcdctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["-w", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

#[tokio::test]
async fn put_get_and_delete_with_prefix() {
    let cf = Chainfire::start().await;
    assert_eq!(cf.ok(&["put", "app/config/a", "1"]).trim(), "OK");
    cf.ok(&["put", "app/config/b", "2"]);
    cf.ok(&["put", "app/other", "3"]);
    cf.ok(&["put", "zzz", "4"]);
    assert_eq!(cf.ok(&["get", "app/config/", "--prefix"]), "app/config/a\n1\napp/config/b\n2\n");
    assert_eq!(
        cf.ok(&["get", "app/", "--prefix", "--keys-only"]).split_whitespace().collect::<Vec<_>>(),
        ["app/config/a", "app/config/b", "app/other"]
    );

    let doc = cf.json(&["get", "app/config/a"]);
    assert_eq!(doc["kvs"][0]["create_revision"], 2);
    assert_eq!(doc["kvs"][0]["version"], 1);
    assert_eq!(doc["header"]["revision"], 5);
    assert_eq!(doc["header"]["member_id"], 1);

    cf.ok(&["put", "app/config/a", "one"]);
    let doc = cf.json(&["get", "app/config/a"]);
    assert_eq!((doc["kvs"][0]["version"].as_i64(), doc["kvs"][0]["mod_revision"].as_i64()), (Some(2), Some(6)));

    assert_eq!(cf.ok(&["del", "app/", "--prefix"]).trim(), "3");
    assert_eq!(cf.ok(&["get", "", "--prefix", "--keys-only"]).split_whitespace().collect::<Vec<_>>(), ["zzz"]);
    assert_eq!(cf.ok(&["del", "missing"]).trim(), "0");
}

#[tokio::test]
async fn txn_from_stdin_takes_the_right_branch() {
    let cf = Chainfire::start().await;
    cf.ok(&["put", "lock", "free"]);
    let script = "value(\"lock\") = \"free\"\n\nput lock taken\nget lock\n\nget lock\n\n";
    let out = cf.etcdctl(&["txn"], Some(script));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("SUCCESS"), "{stdout}");
    assert!(stdout.contains("lock\ntaken"), "the success branch's get sees its put: {stdout}");

    let again = cf.etcdctl(&["txn"], Some(script));
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.starts_with("FAILURE") && stdout.contains("lock\ntaken"), "{stdout}");
    assert_eq!(cf.ok(&["get", "lock", "--print-value-only"]).trim(), "taken");
}

#[tokio::test]
async fn history_compaction_and_revision_errors_match_etcd() {
    let cf = Chainfire::start().await;
    for value in ["v1", "v2", "v3"] {
        cf.ok(&["put", "k", value]);
    }
    // k was written at revisions 2, 3 and 4.
    assert_eq!(cf.ok(&["get", "k", "--rev=2", "--print-value-only"]).trim(), "v1");
    assert_eq!(cf.ok(&["get", "k", "--rev=3", "--print-value-only"]).trim(), "v2");
    assert_eq!(cf.ok(&["compaction", "3"]).trim(), "compacted revision 3");
    assert_eq!(cf.ok(&["get", "k", "--rev=3", "--print-value-only"]).trim(), "v2");

    let compacted = cf.etcdctl(&["get", "k", "--rev=2"], None);
    assert!(!compacted.status.success());
    assert!(
        String::from_utf8_lossy(&compacted.stderr).contains("etcdserver: mvcc: required revision has been compacted")
    );
    let future = cf.etcdctl(&["get", "k", "--rev=100"], None);
    assert!(!future.status.success());
    assert!(
        String::from_utf8_lossy(&future.stderr).contains("etcdserver: mvcc: required revision is a future revision")
    );
    let again = cf.etcdctl(&["compaction", "2"], None);
    assert!(String::from_utf8_lossy(&again.stderr).contains("required revision has been compacted"));
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let mut cf = Chainfire::start().await;
    for i in 0..50 {
        cf.ok(&["put", &format!("durable/{i:02}"), &format!("{i}")]);
    }
    cf.server.process.kill9();
    cf.server.process.start();
    cf.server.wait_healthy(Duration::from_secs(30)).await;
    let keys = cf.ok(&["get", "durable/", "--prefix", "--keys-only"]);
    assert_eq!(keys.split_whitespace().count(), 50, "{keys}");
    assert_eq!(cf.json(&["get", "durable/49"])["header"]["revision"], 51, "the revision survives too");
}

#[tokio::test]
async fn endpoint_status_hash_defrag_and_snapshot() {
    let cf = Chainfire::start().await;
    for i in 0..20 {
        cf.ok(&["put", &format!("m/{i}"), "value"]);
    }
    let status = cf.json(&["endpoint", "status"]);
    let status = &status[0]["Status"];
    assert_eq!(status["leader"], status["header"]["member_id"], "{status}");
    assert_eq!(status["header"]["revision"], 21);
    assert!(
        status["raftAppliedIndex"].as_u64().unwrap_or(0) >= 21
            || status["raft_applied_index"].as_u64().unwrap_or(0) >= 21,
        "{status}"
    );
    assert!(status["dbSize"].as_i64().or(status["db_size"].as_i64()).unwrap_or(0) > 0, "{status}");

    let first = cf.ok(&["endpoint", "hashkv"]);
    assert_eq!(first, cf.ok(&["endpoint", "hashkv"]), "the hash is stable while nothing changes");
    cf.ok(&["put", "m/0", "changed"]);
    assert_ne!(first, cf.ok(&["endpoint", "hashkv"]), "and moves when data does");

    assert!(cf.ok(&["defrag"]).contains("Finished defragmenting"));
    let snapshot = cf.server.dir().join("backup.db");
    let saved = cf.ok(&["snapshot", "save", snapshot.to_str().unwrap()]);
    assert!(saved.contains("Snapshot saved"), "{saved}");
    let size = std::fs::metadata(&snapshot).unwrap().len();
    assert_eq!(size % 512, 32, "etcd's framing: 512-byte sectors plus a SHA-256");
    let health = cf.etcdctl(&["endpoint", "health"], None);
    assert!(health.status.success() && String::from_utf8_lossy(&health.stderr).contains("is healthy"), "{health:?}");
    assert_eq!(cf.ok(&["alarm", "list"]).trim(), "", "no alarm is raised");
}
