//! `photonctl kv` against a real chainfire-server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use photon_testkit::{binary, free_port, TestServer};

fn photonctl(server: &TestServer, args: &[&str]) -> (bool, String) {
    let out = Command::new(binary("photonctl"))
        .arg("kv")
        .args(["--endpoint", &server.url(), "--ca"])
        .arg(server.ca())
        .args(args)
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn put_get_del_and_watch() {
    let raft = format!("127.0.0.1:{}", free_port());
    let mut server = TestServer::start("chainfire-server", &["--raft-listen", &raft]);
    server.wait_healthy(Duration::from_secs(30)).await;

    assert!(photonctl(&server, &["put", "app/a", "1"]).1.starts_with("OK (revision 2)"));
    photonctl(&server, &["put", "app/b", "2"]);
    assert_eq!(photonctl(&server, &["get", "app/", "--prefix"]).1, "app/a = 1\napp/b = 2\n");
    let (_, json) = photonctl(&server, &["--output", "json", "get", "app/a"]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((doc[0]["value"].as_str(), doc[0]["version"].as_i64()), (Some("1"), Some(1)));

    let mut watcher = Command::new(binary("photonctl"))
        .arg("kv")
        .args(["--endpoint", &server.url(), "--ca"])
        .arg(server.ca())
        .args(["watch", "app/", "--prefix", "--rev", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "PUT app/a = 1 (revision 2)", "history replays first");
    assert_eq!(lines.next().unwrap().unwrap(), "PUT app/b = 2 (revision 3)");
    assert_eq!(photonctl(&server, &["del", "app/", "--prefix"]).1.trim(), "2");
    assert_eq!(lines.next().unwrap().unwrap(), "DELETE app/a (revision 4)");
    let _ = watcher.kill();
    let _ = watcher.wait();

    assert_eq!(photonctl(&server, &["get", "app/", "--prefix"]).1, "");
    let (success, out) = photonctl(&server, &["get", "app/a", "--rev", "99"]);
    assert!(!success && out.contains("required revision is a future revision"), "{out}");
    let (success, out) = photonctl(&server, &["put", "x", "y", "--lease", "zz"]);
    assert!(!success && out.contains("not a hex lease id"), "{out}");
}
