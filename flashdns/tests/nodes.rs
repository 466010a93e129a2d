//! Several flashdns nodes on one chainfire: a record changed through one node's API is answered
//! by every node within a second; with chainfire gone they keep answering from their last
//! copy and say so on `/health`.

mod common;

use std::time::{Duration, Instant};

use common::{answer, dig, free_udp_tcp_port, server, Stack};

#[tokio::test(flavor = "multi_thread")]
async fn a_change_reaches_every_node_within_a_second_and_survives_chainfire_stopping() {
    let mut stack = Stack::start(&[]).await;
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_udp_tcp_port()).parse().expect("an address");
        let mut node = server(&stack.env, addr, &[]);
        node.process.start();
        node.wait_healthy(Duration::from_secs(30)).await;
        nodes.push((node, addr));
    }
    let addrs = [stack.dns_addr, nodes[0].1, nodes[1].1];

    let (status, body) = stack.api("POST", "/zones", Some(r#"{"name":"nodes.test"}"#), &stack.tenant);
    assert_eq!(status, 201, "{body}");
    for round in 0..5 {
        let address = format!("192.0.2.{}", 10 + round);
        let body = format!(r#"{{"ttl":60,"data":["{address}"]}}"#);
        let started = Instant::now();
        let (status, reply) = stack.api("PUT", "/zones/nodes.test/records/www/A", Some(&body), &stack.tenant);
        assert_eq!(status, 200, "{reply}");
        let want = format!("www.nodes.test. 60 IN A {address}");
        for addr in addrs {
            loop {
                if answer(&dig(addr, &["www.nodes.test.", "A"])) == vec![want.clone()] {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "round {round}: {addr} did not answer {want} within 1 s of the API's answer"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        println!("round {round}: every node answered the change {:?} after it was made", started.elapsed());
    }

    // Chainfire goes away: every node still answers, and /health says degraded.
    stack.env.chainfire.process.kill9();
    for addr in addrs {
        assert_eq!(answer(&dig(addr, &["www.nodes.test.", "A"])), vec!["www.nodes.test. 60 IN A 192.0.2.14"], "{addr}");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, health) = nodes[0].0.curl("GET", "/health", None, &[]);
        if status == 503 && health["status"] == "degraded" {
            assert_eq!(health["chainfire"], "unreachable", "{health}");
            assert_eq!(health["zones"], 1, "{health}");
            break;
        }
        assert!(Instant::now() < deadline, "health never turned degraded: {status} {health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for addr in addrs {
        assert_eq!(answer(&dig(addr, &["www.nodes.test.", "A"])), vec!["www.nodes.test. 60 IN A 192.0.2.14"], "{addr}");
    }
}
