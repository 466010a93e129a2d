//! UDP through fiberlb: each client address keeps its backend (a flow), new clients are spread
//! round robin, replies come back from the listener's address, and a flow idle past the
//! listener's timeout is forgotten.

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::Duration;

use common::{wait_for, Stack};
use photon_testkit::free_port;

/// A UDP backend replying `<name>:<datagram>`.
async fn udp_backend(name: &'static str) -> u16 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let port = socket.local_addr().expect("address").port();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let reply = format!("{name}:{}", String::from_utf8_lossy(&buf[..n]));
            let _ = socket.send_to(reply.as_bytes(), from).await;
        }
    });
    port
}

/// Sends `text` from `client` to fiberlb's `port`; the reply, if one came within a second.
fn ask(client: &UdpSocket, port: u16, text: &str) -> Option<String> {
    client.send_to(text.as_bytes(), ("127.0.0.1", port)).ok()?;
    let mut buf = [0u8; 2048];
    let (n, from) = client.recv_from(&mut buf).ok()?;
    assert_eq!(from.port(), port, "the reply comes from the listener's address");
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn client() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a client socket");
    socket.set_read_timeout(Some(Duration::from_secs(1))).expect("a timeout");
    socket
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_flows_stick_to_a_backend_and_new_ones_are_spread() {
    let stack = Stack::start().await;
    let (u1, u2) = (udp_backend("u1").await, udp_backend("u2").await);
    let port = free_port();
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"dns","spec":{}}"#));
    for (name, p) in [("u1", u1), ("u2", u2)] {
        let body = format!(r#"{{"name":"{name}","spec":{{"address":"127.0.0.1","port":{p}}}}}"#);
        stack.expect(201, "POST", "/loadbalancers/front/pools/dns/backends", Some(&body));
    }
    let listener = format!(r#"{{"name":"udp","spec":{{"protocol":"udp","port":{port},"default_pool":"dns","timeouts":{{"idle_ms":500}}}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    let first = client();
    wait_for("the UDP listener answers", Duration::from_secs(2), || ask(&first, port, "ping").is_some()).await;

    // One client keeps its backend for every datagram of its flow.
    let owner = ask(&first, port, "a").expect("a reply").split(':').next().expect("a name").to_string();
    for text in ["b", "c", "d"] {
        assert_eq!(ask(&first, port, text), Some(format!("{owner}:{text}")), "a flow keeps its backend");
    }
    // New clients are spread in turn.
    let mut counts = BTreeMap::new();
    let clients: Vec<UdpSocket> = (0..10).map(|_| client()).collect();
    for c in &clients {
        let reply = ask(c, port, "hi").expect("a reply");
        *counts.entry(reply.split(':').next().expect("a name").to_string()).or_insert(0) += 1;
    }
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![5, 5], "{counts:?}");

    // Idle past 500 ms: the flow is forgotten and the next datagram picks again (round robin
    // moves on, so over a few idle periods the client reaches the other backend too).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        seen.insert(ask(&first, port, "x").expect("a reply").split(':').next().expect("a name").to_string());
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert_eq!(seen.len(), 2, "a new flow after each idle period: {seen:?}");
}
