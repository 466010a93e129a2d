//! systemd notify messages, and SIGTERM draining an in-flight request before a clean exit.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use photon_client::get;
use photon_testkit::TestServer;

const SERVICE: &str = "photon-test-service";

fn receive_until(socket: &UnixDatagram, wanted: &str, timeout: Duration, seen: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).to_string();
            let hit = message.lines().any(|l| l == wanted);
            seen.push(message);
            if hit {
                return true;
            }
        }
    }
    false
}

#[tokio::test]
async fn sd_notify_ready_watchdog_and_stopping_arrive() {
    let socket_dir = tempfile::tempdir().unwrap();
    let socket_path = socket_dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();

    let mut server = TestServer::new(SERVICE, &[]);
    server.process.env("NOTIFY_SOCKET", &socket_path).env("WATCHDOG_USEC", "200000");
    server.process.start();
    let mut seen = Vec::new();
    assert!(receive_until(&socket, "READY=1", Duration::from_secs(20), &mut seen), "no READY=1: {seen:?}");
    // READY=1 is sent only once the port serves.
    assert_eq!(server.health().await.unwrap().http_status, 200);
    for _ in 0..3 {
        assert!(
            receive_until(&socket, "WATCHDOG=1", Duration::from_secs(2), &mut seen),
            "watchdog pings stop: {seen:?}"
        );
    }
    server.process.signal(libc::SIGTERM);
    assert!(receive_until(&socket, "STOPPING=1", Duration::from_secs(5), &mut seen), "no STOPPING=1: {seen:?}");
    let status = server.process.wait_exit(Duration::from_secs(10)).expect("did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn sigterm_lets_a_slow_request_finish_then_exits_zero() {
    let mut server = TestServer::start(SERVICE, &[]);
    server.wait_healthy(Duration::from_secs(20)).await;
    let url = format!("{}/api/v1/sleep?ms=1500", server.url());
    let ca = server.ca();
    let slow = tokio::spawn(async move { get(&url, Some(&ca), Duration::from_secs(10)).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let signalled = Instant::now();
    server.process.signal(libc::SIGTERM);

    let answer = slow.await.unwrap().expect("the in-flight request must complete");
    assert_eq!(answer.status, 200);
    assert_eq!(String::from_utf8_lossy(&answer.body), r#"{"slept_ms":1500}"#);
    let status = server.process.wait_exit(Duration::from_secs(10)).expect("did not exit after the drain");
    assert!(status.success(), "exit status {status}");
    assert!(signalled.elapsed() >= Duration::from_millis(900), "exited before the request finished");
    // Once drained, the port is closed.
    assert!(server.health().await.is_err());
    let logs = server.process.logs();
    assert!(logs.contains("received SIGTERM") && logs.contains("stopped cleanly"), "{logs}");
}

#[tokio::test]
async fn the_drain_has_a_deadline() {
    let mut server = TestServer::new(SERVICE, &[]);
    server.process.env("PHOTON_TEST_SERVER_SHUTDOWN_TIMEOUT_SECS", "1").start();
    server.wait_healthy(Duration::from_secs(20)).await;
    let url = format!("{}/api/v1/sleep?ms=30000", server.url());
    let ca = server.ca();
    let stuck = tokio::spawn(async move { get(&url, Some(&ca), Duration::from_secs(40)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    server.process.signal(libc::SIGTERM);
    let status = server.process.wait_exit(Duration::from_secs(10)).expect("the drain deadline was not honoured");
    assert!(status.success());
    assert!(signalled.elapsed() < Duration::from_secs(5));
    assert!(stuck.await.unwrap().is_err(), "the request cut by the deadline fails rather than hangs");
}

#[tokio::test]
async fn losing_the_log_sink_does_not_take_the_service_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = photon_testkit::free_port();
    let mut child = std::process::Command::new(photon_testkit::binary(SERVICE))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--log-level", "debug", "--data-dir"])
        .arg(dir.path().join("data"))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading ends: every log line the server writes now hits a broken pipe.
    drop(child.stderr.take());
    drop(child.stdout.take());
    let ca = dir.path().join("data/dev-ca/ca.crt");
    let url = format!("https://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(answer) = photon_client::probe_health(&url, Some(&ca), Duration::from_secs(2)).await {
            assert_eq!(answer.http_status, 200);
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the server died when its stderr went away");
        assert!(Instant::now() < deadline, "never healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "a graceful stop still exits 0, got {status}");
}

#[tokio::test]
async fn logs_are_json_under_systemd_and_text_otherwise() {
    let mut journald = TestServer::new(SERVICE, &[]);
    // systemd sets JOURNAL_STREAM when stderr goes to the journal.
    journald.process.env("JOURNAL_STREAM", "8:12345").start();
    journald.wait_healthy(Duration::from_secs(20)).await;
    let logs = journald.process.logs();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.starts_with("====")).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(event.get("level").is_some() && event.get("timestamp").is_some(), "{line}");
    }
    assert!(lines.iter().any(|l| l.contains(r#""message":"serving gRPC, REST, /health and /metrics""#)), "{logs}");

    let mut terminal = TestServer::start(SERVICE, &[]);
    terminal.wait_healthy(Duration::from_secs(20)).await;
    let logs = terminal.process.logs();
    assert!(logs.contains(" INFO ") && !logs.contains('\u{1b}'), "plain text without colour codes in a file:\n{logs}");
}
