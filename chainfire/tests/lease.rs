//! The Lease service through etcdctl: grant, attach keys, keep-alive, time-to-live, revoke,
//! and expiry, including across a restart.

use std::time::{Duration, Instant};

mod common;

use common::{etcdctl, etcdctl_ok, single};
use photon_testkit::TestServer;

async fn start() -> TestServer {
    single(&[]).await
}

fn ok(server: &TestServer, args: &[&str]) -> String {
    etcdctl_ok(server, args)
}

fn grant(server: &TestServer, ttl: &str) -> String {
    let out = ok(server, &["lease", "grant", ttl]);
    out.split_whitespace().nth(1).unwrap_or_else(|| panic!("no lease id in {out}")).to_string()
}

async fn wait_until_gone(server: &TestServer, key: &str, within: Duration) -> Duration {
    let start = Instant::now();
    while !ok(server, &["get", key, "--keys-only"]).trim().is_empty() {
        assert!(start.elapsed() < within, "{key} still there after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn grant_attach_keep_alive_inspect_and_revoke() {
    let server = start().await;
    let lease = grant(&server, "60");
    ok(&server, &["put", "--lease", &lease, "session/a", "1"]);
    ok(&server, &["put", "--lease", &lease, "session/b", "2"]);
    let ttl = ok(&server, &["lease", "timetolive", &lease, "--keys"]);
    assert!(ttl.contains("granted with TTL(60s)") && ttl.contains("attached keys([session/a session/b])"), "{ttl}");
    assert!(ok(&server, &["lease", "keep-alive", "--once", &lease]).contains("keepalived with TTL(60)"));
    assert!(ok(&server, &["lease", "list"]).contains(&lease));

    // Moving a key to no lease detaches it.
    ok(&server, &["put", "session/b", "kept"]);
    assert!(ok(&server, &["lease", "timetolive", &lease, "--keys"]).contains("attached keys([session/a])"));

    assert!(ok(&server, &["lease", "revoke", &lease]).contains("revoked"));
    assert_eq!(
        ok(&server, &["get", "session/", "--prefix"]),
        "session/b\nkept\n",
        "revoking deletes only the attached keys"
    );
    assert!(ok(&server, &["lease", "timetolive", &lease]).contains("already expired"));
    let (success, out) = etcdctl(&server, &["lease", "revoke", &lease]);
    assert!(!success && out.contains("requested lease not found"), "{out}");
    let (success, out) = etcdctl(&server, &["put", "--lease", "123abc", "x", "y"]);
    assert!(!success && out.contains("requested lease not found"), "{out}");
}

#[tokio::test]
async fn an_unrenewed_lease_expires_and_takes_its_keys() {
    let server = start().await;
    let lease = grant(&server, "2");
    ok(&server, &["put", "--lease", &lease, "ephemeral", "x"]);
    let gone_after = wait_until_gone(&server, "ephemeral", Duration::from_secs(10)).await;
    assert!(gone_after >= Duration::from_millis(1000), "expired too early: {gone_after:?}");
    assert!(ok(&server, &["lease", "timetolive", &lease]).contains("already expired"));
}

#[tokio::test]
async fn leases_survive_a_restart_and_still_expire() {
    let mut server = start().await;
    let lease = grant(&server, "3");
    ok(&server, &["put", "--lease", &lease, "owned", "x"]);
    server.process.kill9();
    server.process.start();
    server.wait_healthy(Duration::from_secs(30)).await;
    assert!(ok(&server, &["lease", "list"]).contains(&lease), "the lease is replicated state and survives kill -9");
    assert_eq!(ok(&server, &["get", "owned", "--print-value-only"]).trim(), "x");
    wait_until_gone(&server, "owned", Duration::from_secs(15)).await;
}
