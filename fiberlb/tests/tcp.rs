//! L4 TCP through fiberlb with curl and raw connections to backends the test starts: a listener
//! created through the API accepts within a second; round robin takes turns; a disabled backend
//! gets nothing new; a dead backend costs no failed connection (another is tried, and it is
//! ejected); a connection open across configuration changes keeps working; a deleted listener
//! stops accepting; PROXY protocol v1 reaches the backend.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{backend, through, wait_for, Stack};
use photon_testkit::free_port;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;


fn backend_body(port: u16, extra: &str) -> String {
    format!(r#"{{"spec":{{"address":"127.0.0.1","port":{port}{extra}}}}}"#)
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_listeners_balance_follow_changes_and_survive_dead_backends() {
    let stack = Stack::start().await;
    let backends = [backend("b1").await, backend("b2").await, backend("b3").await];
    let port = free_port();
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"web","spec":{"eject_after_failures":1}}"#));
    for (i, b) in backends.iter().enumerate() {
        let body = format!(r#"{{"name":"b{}","spec":{{"address":"127.0.0.1","port":{}}}}}"#, i + 1, b.port);
        stack.expect(201, "POST", "/loadbalancers/front/pools/web/backends", Some(&body));
    }
    let listener = format!(r#"{{"name":"tcp","spec":{{"protocol":"tcp","port":{port},"default_pool":"web"}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    let took = wait_for("the listener accepts", Duration::from_secs(1), || through(port).is_some()).await;
    eprintln!("listener accepting {took:?} after its creation");

    // Round robin: 30 connections, 10 each.
    let mut counts = BTreeMap::new();
    for _ in 0..30 {
        *counts.entry(through(port).expect("a connection through")).or_insert(0) += 1;
    }
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![10, 10, 10], "{counts:?}");

    // A connection held open across changes keeps working.
    let mut held = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.expect("connect"));
    held.get_mut().write_all(b"one\n").await.expect("write");
    let mut reply = String::new();
    held.read_line(&mut reply).await.expect("read");
    let held_by = reply.split(':').next().expect("a name").to_string();

    // b1 disabled: nothing new reaches it, within a second.
    stack.expect(200, "PUT", "/loadbalancers/front/pools/web/backends/b1", Some(&backend_body(backends[0].port, r#","admin_state":"disabled""#)));
    wait_for("b1 gets nothing new", Duration::from_secs(1), || (0..6).all(|_| through(port).as_deref() != Some("b1"))).await;

    // b2 dies: every connection still gets through (b3 is tried), and b2 is ejected.
    backends[1].task.abort();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..10 {
        assert_eq!(through(port).as_deref(), Some("b3"), "with b1 disabled and b2 dead, b3 answers");
    }
    let (_, health) = stack.lb.curl("GET", "/health", None, &[]);
    assert_eq!((health["listeners"].as_u64(), health["backends_down"].as_u64()), (Some(1), Some(1)), "{health}");

    // The held connection: if it was on b1 (now disabled) it is closed; otherwise it still works.
    held.get_mut().write_all(b"two\n").await.ok();
    let mut reply = String::new();
    let read = tokio::time::timeout(Duration::from_secs(3), held.read_line(&mut reply)).await;
    match held_by.as_str() {
        "b1" => assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a disabled backend's connection is closed: {reply:?}"),
        "b2" => {} // its backend is dead
        _ => assert_eq!(reply, format!("{held_by}:two\n"), "an open connection outlives configuration changes"),
    }

    // PROXY protocol v1 on the pool: the backend's first line is the header with the client.
    let mut b3 = backends.into_iter().nth(2).expect("b3");
    while b3.first_lines.try_recv().is_ok() {}
    stack.expect(200, "PUT", "/loadbalancers/front/pools/web", Some(r#"{"spec":{"eject_after_failures":1,"proxy_protocol":"v1"}}"#));
    let started = Instant::now();
    let first = loop {
        through(port);
        if let Ok(line) = tokio::time::timeout(Duration::from_millis(200), b3.first_lines.recv()).await {
            let line = line.expect("a line");
            if line.starts_with("PROXY ") {
                break line;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(2), "PROXY header within 2 s");
    };
    assert!(first.starts_with("PROXY TCP4 127.0.0.1 127.0.0.1 ") && first.ends_with(&format!(" {port}")), "{first}");

    // The listener deleted: its port stops accepting within a second.
    stack.expect(204, "DELETE", "/loadbalancers/front/listeners/tcp", None);
    wait_for("the port closes", Duration::from_secs(1), || std::net::TcpStream::connect(("127.0.0.1", port)).is_err()).await;
}
