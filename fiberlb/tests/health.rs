//! Active health checks against backends the test starts: an HTTP check failing `fall` times
//! takes a backend out of rotation and `/health` counts it down; passing `rise` times brings it
//! back; a TCP check notices a backend that stopped listening.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{backend, through, wait_for, Stack};
use photon_testkit::free_port;

#[tokio::test(flavor = "multi_thread")]
async fn failing_checks_take_backends_out_and_passing_ones_bring_them_back() {
    let stack = Stack::start().await;
    let (b1, b2) = (backend("b1").await, backend("b2").await);
    let port = free_port();
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"web","spec":{}}"#));
    for (name, b) in [("b1", &b1), ("b2", &b2)] {
        let body = format!(r#"{{"name":"{name}","spec":{{"address":"127.0.0.1","port":{}}}}}"#, b.port);
        stack.expect(201, "POST", "/loadbalancers/front/pools/web/backends", Some(&body));
    }
    let check = r#"{"name":"http","spec":{"probe":"http","path":"/healthz","interval_ms":100,"timeout_ms":100,"rise":2,"fall":2}}"#;
    stack.expect(201, "POST", "/loadbalancers/front/pools/web/healthchecks", Some(check));
    let listener = format!(r#"{{"name":"tcp","spec":{{"protocol":"tcp","port":{port},"default_pool":"web"}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    wait_for("the listener accepts", Duration::from_secs(1), || through(port).is_some()).await;
    let health = |key: &str| stack.lb.curl("GET", "/health", None, &[]).1[key].as_u64();
    assert_eq!((health("backends_up"), health("backends_down")), (Some(2), Some(0)));

    // b1's check fails: after two failures (about 200 ms) it gets nothing new.
    b1.healthy.store(false, Ordering::SeqCst);
    let took = wait_for("b1 down", Duration::from_secs(2), || health("backends_down") == Some(1)).await;
    eprintln!("b1 marked down {took:?} after its check began failing");
    for _ in 0..10 {
        assert_eq!(through(port).as_deref(), Some("b2"), "a backend whose check fails gets no traffic");
    }

    // Passing again: back after two successes.
    b1.healthy.store(true, Ordering::SeqCst);
    wait_for("b1 up", Duration::from_secs(2), || health("backends_up") == Some(2)).await;
    let answered: Vec<String> = (0..10).filter_map(|_| through(port)).collect();
    assert!(answered.iter().any(|b| b == "b1"), "b1 takes traffic again: {answered:?}");

    // A TCP check instead: b2 stops listening and is marked down.
    stack.expect(204, "DELETE", "/loadbalancers/front/pools/web/healthchecks/http", None);
    let tcp = r#"{"name":"tcp","spec":{"probe":"tcp","interval_ms":100,"timeout_ms":100,"rise":1,"fall":1}}"#;
    stack.expect(201, "POST", "/loadbalancers/front/pools/web/healthchecks", Some(tcp));
    b2.task.abort();
    wait_for("b2 down by TCP check", Duration::from_secs(2), || health("backends_down") == Some(1)).await;
    for _ in 0..5 {
        assert_eq!(through(port).as_deref(), Some("b1"));
    }
}
