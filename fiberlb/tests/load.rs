//! Under load (wrk, keep-alive, 16 connections): a backend killed, a backend drained, and
//! backends added and removed while requests flow — every request answered 2xx, no socket
//! error (connect, read, write or timeout) at the client.

mod common;

use std::time::Duration;

use common::{http_backend, wait_for, wrk, Stack};
use photon_testkit::free_port;

#[tokio::test(flavor = "multi_thread")]
async fn killed_drained_and_changed_backends_fail_no_request() {
    let stack = Stack::start().await;
    let backends = [http_backend("b1").await, http_backend("b2").await, http_backend("b3").await, http_backend("b4").await];
    let port = free_port();
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"web","spec":{}}"#));
    let add = |name: &str, port: u16| {
        let body = format!(r#"{{"name":"{name}","spec":{{"address":"127.0.0.1","port":{port}}}}}"#);
        stack.expect(201, "POST", "/loadbalancers/front/pools/web/backends", Some(&body));
    };
    for (i, b) in backends.iter().take(3).enumerate() {
        add(&format!("b{}", i + 1), b.port);
    }
    let listener = format!(r#"{{"name":"http","spec":{{"protocol":"http","port":{port},"default_pool":"web"}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    let url = format!("http://127.0.0.1:{port}/");
    wait_for("the listener answers", Duration::from_secs(1), || common::through(port).is_some()).await;

    // 1. b1 killed two seconds into the run: its requests go to the others.
    let load = { let url = url.clone(); std::thread::spawn(move || wrk(&url, 5)) };
    tokio::time::sleep(Duration::from_secs(2)).await;
    backends[0].stop.cancel();
    let run = load.join().expect("wrk");
    eprintln!("killed: {} requests, {} non-2xx, {} socket errors", run.requests, run.non_2xx, run.socket_errors);
    assert!(run.requests > 1000 && run.non_2xx == 0 && run.socket_errors == 0, "a killed backend failed requests:\n{}", run.text);

    // 2. b2 drained mid-run: nothing new reaches it, nothing fails.
    let load = { let url = url.clone(); std::thread::spawn(move || wrk(&url, 4)) };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let drain = format!(r#"{{"spec":{{"address":"127.0.0.1","port":{},"admin_state":"drain"}}}}"#, backends[1].port);
    stack.expect(200, "PUT", "/loadbalancers/front/pools/web/backends/b2", Some(&drain));
    let run = load.join().expect("wrk");
    eprintln!("drained: {} requests, {} non-2xx, {} socket errors", run.requests, run.non_2xx, run.socket_errors);
    assert!(run.requests > 1000 && run.non_2xx == 0 && run.socket_errors == 0, "a drain failed requests:\n{}", run.text);

    // 3. Backends added and removed while requests flow.
    let load = { let url = url.clone(); std::thread::spawn(move || wrk(&url, 5)) };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    add("b4", backends[3].port);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stack.expect(204, "DELETE", "/loadbalancers/front/pools/web/backends/b3", None);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let enable = format!(r#"{{"spec":{{"address":"127.0.0.1","port":{}}}}}"#, backends[1].port);
    stack.expect(200, "PUT", "/loadbalancers/front/pools/web/backends/b2", Some(&enable));
    let run = load.join().expect("wrk");
    eprintln!("changed: {} requests, {} non-2xx, {} socket errors", run.requests, run.non_2xx, run.socket_errors);
    assert!(run.requests > 1000 && run.non_2xx == 0 && run.socket_errors == 0, "changes failed requests:\n{}", run.text);
}
