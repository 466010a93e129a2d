//! Request and response bodies through FiberLB's HTTP/1.1 path, byte for byte, to a backend
//! that echoes what it gets (hyper): a 1 MiB body with a length and one chunked come back
//! whole; a chunked body over the listener's limit gets 413 and a malformed one 400; pipelined
//! requests are answered in order; HEAD gets a head and the connection goes on.

mod common;

use std::convert::Infallible;
use std::process::Command;
use std::time::Duration;

use common::{wait_for, Stack};
use photon_testkit::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A backend answering every request with its own body (HEAD: a head only).
async fn echo() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                    Ok::<_, Infallible>(hyper::Response::new(request.into_body()))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
            });
        }
    });
    port
}

/// curl POSTing `file` (chunked when asked): (status, body).
fn post(url: &str, file: &std::path::Path, chunked: bool) -> (u16, Vec<u8>) {
    let mut command = Command::new("curl");
    command.args(["-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", "--data-binary"]).arg(format!("@{}", file.display()));
    if chunked {
        command.args(["-H", "Transfer-Encoding: chunked"]);
    }
    let out = command.arg(url).output().expect("curl runs");
    let split = out.stdout.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&out.stdout[split..]).trim().parse().unwrap_or(0);
    (code, out.stdout[..split].to_vec())
}

/// Writes `request` on a fresh connection and reads until the server closes or `until` shows.
async fn raw(port: u16, request: &[u8], until: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    stream.write_all(request).await.expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while !String::from_utf8_lossy(&got).contains(until) {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_go_through_byte_for_byte_and_framing_errors_are_answered() {
    let stack = Stack::start().await;
    let backend = echo().await;
    let port = free_port();
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"web","spec":{}}"#));
    let b = format!(r#"{{"name":"echo","spec":{{"address":"127.0.0.1","port":{backend}}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/pools/web/backends", Some(&b));
    let listener = format!(r#"{{"name":"http","spec":{{"protocol":"http","port":{port},"default_pool":"web","max_body_bytes":2000000}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    wait_for("the listener", Duration::from_secs(5), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).await;
    let url = format!("http://127.0.0.1:{port}/echo");

    let dir = tempfile::tempdir().expect("a directory");
    let payload: Vec<u8> = (0..1_048_576u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let file = dir.path().join("payload");
    std::fs::write(&file, &payload).expect("write");
    for chunked in [false, true] {
        let mut answered = (0, Vec::new());
        for _ in 0..50 {
            answered = post(&url, &file, chunked);
            if answered.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(answered.0, 200, "chunked {chunked}");
        assert!(answered.1 == payload, "chunked {chunked}: {} bytes back, not the 1 MiB sent", answered.1.len());
    }
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 2_100_000]).expect("write");
    assert_eq!(post(&url, &big, true).0, 413, "a chunked body over the limit");

    let malformed = raw(port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", "\r\n\r\n").await;
    assert!(malformed.starts_with("HTTP/1.1 400"), "{malformed}");
    let smuggled =
        raw(port, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "\r\n\r\n").await;
    assert!(smuggled.starts_with("HTTP/1.1 400"), "{smuggled}");

    // Two requests in one write: two answers, in order; then HEAD and a GET on one connection.
    let pipelined = raw(
        port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirstPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond",
        "second",
    )
    .await;
    let (first, second) = (pipelined.find("first"), pipelined.find("second"));
    assert!(first.is_some() && second.is_some() && first < second, "{pipelined}");
    assert_eq!(pipelined.matches("HTTP/1.1 200").count(), 2, "{pipelined}");
    let head_then_get = raw(
        port,
        b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nnext",
        "next",
    )
    .await;
    assert_eq!(head_then_get.matches("HTTP/1.1 200").count(), 2, "{head_then_get}");
    assert!(head_then_get.ends_with("next"), "{head_then_get}");
}
