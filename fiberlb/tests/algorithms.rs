//! Balancing through fiberlb to backends the test starts, with curl: weighted round robin gives
//! shares by weight, Maglev on a header keeps each key on one backend (affinity) and spreads the
//! keys, and hashing on the source address keeps a client on one backend. (Round robin is
//! checked in `tcp.rs`; least connections and two choices statistically in `balance::tests`.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::{http_backend, wait_for, Stack};
use photon_testkit::free_port;

/// The backend that answered one curl through `port` with `headers`.
fn answer(port: u16, headers: &[&str]) -> String {
    let mut command = Command::new("curl");
    command.args(["-s", "--max-time", "3"]);
    for header in headers {
        command.args(["-H", header]);
    }
    let out = command.arg(format!("http://127.0.0.1:{port}/")).output().expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A load balancer with one HTTP listener on a pool of `algorithm` (JSON spec fields) over
/// backends b1..b3 with `weights`; its port.
async fn balancer(stack: &Stack, pool_spec: &str, ports: &[u16], weights: &[u32]) -> u16 {
    let port = free_port();
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(&format!(r#"{{"name":"web","spec":{pool_spec}}}"#)));
    for (i, (p, w)) in ports.iter().zip(weights).enumerate() {
        let body = format!(r#"{{"name":"b{}","spec":{{"address":"127.0.0.1","port":{p},"weight":{w}}}}}"#, i + 1);
        stack.expect(201, "POST", "/loadbalancers/front/pools/web/backends", Some(&body));
    }
    let listener = format!(r#"{{"name":"http","spec":{{"protocol":"http","port":{port},"default_pool":"web"}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    wait_for("the listener answers", Duration::from_secs(1), || !answer(port, &[]).is_empty()).await;
    port
}

fn shares(port: u16, n: usize, headers: &[&str]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        *counts.entry(answer(port, headers)).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_round_robin_and_maglev_affinity_distribute_as_specified() {
    let stack = Stack::start().await;
    let backends = [http_backend("b1").await, http_backend("b2").await, http_backend("b3").await];
    let ports: Vec<u16> = backends.iter().map(|b| b.port).collect();

    // Weighted round robin, weights 3:2:1: exactly that over 60 requests (smooth WRR is exact
    // over whole cycles).
    let port = balancer(&stack, r#"{"algorithm":"weighted_round_robin"}"#, &ports, &[3, 2, 1]).await;
    let counts = shares(port, 60, &[]);
    assert_eq!(counts.get("b1").copied().unwrap_or(0) + counts.get("b2").copied().unwrap_or(0) + counts.get("b3").copied().unwrap_or(0), 60);
    let (b1, b2, b3) = (counts["b1"], counts["b2"], counts["b3"]);
    assert!((29..=31).contains(&b1) && (19..=21).contains(&b2) && (9..=11).contains(&b3), "3:2:1 expected: {counts:?}");
    stack.expect(204, "DELETE", "/loadbalancers/front", None);
    wait_for("the port closes", Duration::from_secs(2), || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()).await;

    // Maglev on a header: every key always on the same backend, and 60 keys over all three.
    let pool = r#"{"algorithm":"maglev","hash_on":{"header":{"name":"x-user"}}}"#;
    let port = balancer(&stack, pool, &ports, &[1, 1, 1]).await;
    let mut owners = BTreeMap::new();
    for user in 0..60 {
        let header = format!("x-user: user{user}");
        let first = answer(port, &[&header]);
        for _ in 0..3 {
            assert_eq!(answer(port, &[&header]), first, "user{user} moved between backends");
        }
        *owners.entry(first).or_insert(0) += 1;
    }
    assert_eq!(owners.len(), 3, "the keys spread over every backend: {owners:?}");
    assert!(owners.values().all(|&n| n >= 8), "no backend starved: {owners:?}");
    stack.expect(204, "DELETE", "/loadbalancers/front", None);
    wait_for("the port closes", Duration::from_secs(2), || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()).await;

    // Affinity by source address with round robin underneath: one client, one backend.
    let pool = r#"{"algorithm":"maglev","hash_on":"source_address"}"#;
    let port = balancer(&stack, pool, &ports, &[1, 1, 1]).await;
    let seen: BTreeSet<String> = (0..20).map(|_| answer(port, &[])).collect();
    assert_eq!(seen.len(), 1, "one client keeps one backend: {seen:?}");
}
