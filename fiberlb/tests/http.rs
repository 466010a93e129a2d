//! L7 through fiberlb with curl (HTTP/1.1, h2c, HTTPS with SNI and HTTP/2) to backends the
//! test starts: rules route by path and host or redirect; the default pool takes the rest in
//! turn; forwarding headers reach the backend; a WebSocket upgrade joins client and backend; a dead backend costs no failed GET; oversized
//! headers get 431 and oversized bodies 413; a certificate is chosen by SNI and rotated live,
//! its private key sealed at rest and redacted when read.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{backend, wait_for, Stack};
use photon_testkit::free_port;

/// curl with `args`: (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl").args(["-s", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}"]).args(args).output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn http_rules_route_forward_headers_retry_and_limit() {
    let stack = Stack::start().await;
    let (b1, b2, b3) = (backend("b1").await, backend("b2").await, backend("b3").await);
    let port = free_port();
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    for pool in ["web", "api"] {
        stack.expect(201, "POST", "/loadbalancers/front/pools", Some(&format!(r#"{{"name":"{pool}","spec":{{}}}}"#)));
    }
    for (pool, name, b) in [("web", "b1", &b1), ("web", "b2", &b2), ("api", "b3", &b3)] {
        let body = format!(r#"{{"name":"{name}","spec":{{"address":"127.0.0.1","port":{}}}}}"#, b.port);
        stack.expect(201, "POST", &format!("/loadbalancers/front/pools/{pool}/backends"), Some(&body));
    }
    let listener = format!(
        r#"{{"name":"http","spec":{{"protocol":"http","port":{port},"default_pool":"web","max_header_bytes":8192,"max_body_bytes":1000}}}}"#
    );
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    let rules = "/loadbalancers/front/listeners/http/rules";
    stack.expect(201, "POST", rules, Some(r#"{"name":"api","spec":{"priority":10,"match":{"path_prefix":"/api/"},"action":{"forward":{"pool":"api"}},"set_headers":{"x-routed":"api"}}}"#));
    stack.expect(201, "POST", rules, Some(r#"{"name":"old","spec":{"priority":5,"match":{"host":"old.example"},"action":{"redirect":{"location":"https://new.example/","status":301}}}}"#));
    stack.expect(201, "POST", rules, Some(r#"{"name":"ver","spec":{"priority":20,"match":{"path_regex":"/v[0-9]+/.*","headers":{"x-beta":"1"}},"action":{"forward":{"pool":"api"}}}}"#));
    let url = format!("http://127.0.0.1:{port}");
    wait_for("the listener answers", Duration::from_secs(1), || curl(&[&url]).0 == 200).await;

    // The default pool in turn, over HTTP/1.1 and h2c.
    let mut seen: Vec<String> = (0..4).map(|_| curl(&[&url]).1).collect();
    seen.sort();
    assert_eq!(seen, ["b1", "b1", "b2", "b2"]);
    let (status, body) = curl(&["--http2-prior-knowledge", &format!("{url}/x")]);
    assert!(status == 200 && (body == "b1" || body == "b2"), "h2c: {status} {body}");

    // Rules: path prefix, regex with a header, host redirect; the headers the backend sees.
    assert_eq!(curl(&[&format!("{url}/api/users")]).1, "b3");
    assert_eq!(curl(&["-H", "x-beta: 1", &format!("{url}/v2/items")]).1, "b3");
    assert_ne!(curl(&[&format!("{url}/v2/items")]).1, "b3", "without the header the regex rule does not match");
    let (status, _) = curl(&["-H", "Host: old.example", &url]);
    assert_eq!(status, 301);
    let out = Command::new("curl").args(["-s", "-D", "-", "-o", "/dev/null", "-H", "Host: old.example", &url]).output().expect("curl");
    assert!(String::from_utf8_lossy(&out.stdout).to_ascii_lowercase().contains("location: https://new.example/"));
    let (_, headers) = curl(&["-H", "X-Forwarded-For: 198.51.100.9", &format!("{url}/api/../headers")]);
    let (_, headers_api) = curl(&[&format!("{url}/api/x/../../headers")]);
    for seen in [&headers, &headers_api] {
        assert!(seen.contains("x-forwarded-proto: http"), "{seen}");
        assert!(seen.contains("forwarded: for=127.0.0.1;proto=http;host=127.0.0.1"), "{seen}");
    }
    assert!(headers.contains("x-forwarded-for: 198.51.100.9, 127.0.0.1"), "appended to the client's: {headers}");

    // Limits: a header section over the listener's limit, a body over it.
    let big = format!("x-big: {}", "a".repeat(20_000));
    assert_eq!(curl(&["-H", &big, &url]).0, 431);
    assert_eq!(curl(&["--data-binary", &"b".repeat(2000), &url]).0, 413);
    assert_eq!(curl(&["--data-binary", "small", &url]).0, 200);

    // A WebSocket upgrade: 101 from the backend, then bytes both ways over the joined
    // connections (a small client: the handshake, then lines the backend echoes).
    {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let mut ws = BufReader::new(stream);
        let handshake = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        ws.get_mut().write_all(handshake.as_bytes()).await.expect("send the handshake");
        let mut status = String::new();
        ws.read_line(&mut status).await.expect("the status line");
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        loop {
            let mut line = String::new();
            ws.read_line(&mut line).await.expect("a header");
            if line == "\r\n" {
                break;
            }
        }
        for message in ["hello", "again"] {
            ws.get_mut().write_all(format!("{message}\n").as_bytes()).await.expect("send");
            let mut echo = String::new();
            tokio::time::timeout(Duration::from_secs(3), ws.read_line(&mut echo)).await.expect("an echo in time").expect("read");
            assert!(echo.ends_with(&format!(":{message}\n")), "echoed through the upgrade: {echo:?}");
        }
    }

    // Metrics: requests by listener and status class, latency, connections, backends' gauges.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = stack.lb.curl("GET", "/metrics", None, &[]);
        let text = metrics.as_str().unwrap_or_default().to_string();
        let ok = text.lines().any(|l| l.starts_with("fiberlb_requests_total{") && l.contains("class=\"2xx\"") && l.contains("listener=\"http\"") && !l.ends_with(" 0"))
            && text.lines().any(|l| l.starts_with("fiberlb_requests_total{") && l.contains("class=\"4xx\"") && !l.ends_with(" 0"))
            && text.contains("fiberlb_request_duration_seconds_bucket{")
            && text.lines().any(|l| l.starts_with("fiberlb_backend_up{") && l.contains("backend=\"b3\"") && l.ends_with(" 1"));
        if ok {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "metrics never showed the traffic: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // b1 dies: no GET fails (another backend is tried).
    b1.task.abort();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..10 {
        let (status, body) = curl(&[&url]);
        assert_eq!((status, body.as_str()), (200, "b2"), "with b1 dead, b2 answers every GET");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_terminates_tls_by_sni_and_rotates_certificates_live() {
    let stack = Stack::start().await;
    let b1 = backend("b1").await;
    let port = free_port();
    let dir = tempfile::tempdir().expect("a temp dir");
    let (ca, _) = photon_tls::DevCa::load_or_create(&dir.path().join("ca")).expect("a CA");
    let app = ca.issue(&dir.path().join("certs"), "app", &["app.example".into()]).expect("app's certificate");
    let other = ca.issue(&dir.path().join("certs"), "other", &["*.other.example".into()]).expect("other's certificate");
    let pem = |path: &std::path::Path| json_string(&std::fs::read_to_string(path).expect("read PEM"));
    let cert = |issued: &photon_tls::IssuedCert, host: &str| {
        format!(r#"{{"hosts":["{host}"],"certificate_pem":{},"private_key_pem":{}}}"#, pem(&issued.cert_path), pem(&issued.key_path))
    };
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"web","spec":{}}"#));
    let body = format!(r#"{{"name":"b1","spec":{{"address":"127.0.0.1","port":{}}}}}"#, b1.port);
    stack.expect(201, "POST", "/loadbalancers/front/pools/web/backends", Some(&body));
    let spec = |certs: &str| format!(r#"{{"protocol":"https","port":{port},"default_pool":"web","certificates":[{certs}]}}"#);
    let listener = format!(r#"{{"name":"tls","spec":{}}}"#, spec(&cert(&app, "app.example")));
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    let ca_path = ca.cert_path();
    let ca_arg = ca_path.to_str().expect("a path");
    let get = |host: &str, extra: &[&str]| {
        let resolve = format!("{host}:{port}:127.0.0.1");
        let url = format!("https://{host}:{port}/headers");
        let mut args = vec!["--cacert", ca_arg, "--resolve", &resolve];
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    };
    wait_for("HTTPS answers", Duration::from_secs(1), || get("app.example", &[]).0 == 200).await;

    // The private key is sealed at rest and never read back.
    let read = stack.expect(200, "GET", "/loadbalancers/front/listeners/tls", None);
    assert_eq!(read["spec"]["certificates"][0]["private_key_pem"], "(sealed)", "{read}");
    let stored = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", stack.env.chainfire.url()))
        .arg(format!("--cacert={}", stack.env.chainfire.ca().display()))
        .args(["get", "--prefix", "/photoncloud/fiberlb/"])
        .output()
        .expect("etcdctl runs");
    let stored = String::from_utf8_lossy(&stored.stdout);
    assert!(stored.contains("BEGIN CERTIFICATE") && stored.contains("sealed:"), "the listener is stored: {stored}");
    assert!(!stored.contains("PRIVATE KEY"), "no private key in chainfire in the clear");
    let (status, headers) = get("app.example", &["--http2"]);
    assert_eq!(status, 200, "{headers}");
    assert!(headers.starts_with("b1\n") && headers.contains("x-forwarded-proto: https"), "{headers}");
    // A name no certificate lists gets the first certificate, which curl rejects.
    assert_eq!(get("www.other.example", &[]).0, 0, "no certificate for www.other.example yet");

    // Rotation: add a wildcard certificate; the next handshake for that name uses it. The
    // first certificate's key is sent back redacted, which keeps the stored one.
    let redacted = cert(&app, "app.example").replace(&pem(&app.key_path), "\"(sealed)\"");
    let both = format!("{redacted},{}", cert(&other, "*.other.example"));
    stack.expect(200, "PUT", "/loadbalancers/front/listeners/tls", Some(&format!(r#"{{"spec":{}}}"#, spec(&both))));
    wait_for("the new certificate serves", Duration::from_secs(1), || get("www.other.example", &[]).0 == 200).await;
    assert_eq!(get("app.example", &[]).0, 200, "the first certificate still serves its name");

    // Not TLS at all, and a ClientHello cut short: the connection is closed, nothing crashes,
    // and the next client is served.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        for garbage in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00][..]] {
            let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
            raw.write_all(garbage).await.expect("write");
            let _ = raw.shutdown().await;
            let mut buf = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(12), raw.read_to_end(&mut buf)).await;
            assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "a bad handshake is closed: {read:?}");
        }
        assert_eq!(get("app.example", &[]).0, 200, "served after bad handshakes");
    }

    // A certificate that does not parse is refused with the field named.
    let bad = spec(r#"{"hosts":["x.example"],"certificate_pem":"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n","private_key_pem":"no"}"#);
    let (status, json) = stack.api("PUT", "/loadbalancers/front/listeners/tls", Some(&format!(r#"{{"spec":{bad}}}"#)), &stack.tenant);
    assert_eq!(status, 400, "{json}");
    assert!(json["error"]["field"].as_str().unwrap_or("").starts_with("spec.certificates[0]."), "{json}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off_and_others_still_served() {
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let stack = Stack::start().await;
    let b1 = backend("b1").await;
    let port = free_port();
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    stack.expect(201, "POST", "/loadbalancers/front/pools", Some(r#"{"name":"web","spec":{}}"#));
    let body = format!(r#"{{"name":"b1","spec":{{"address":"127.0.0.1","port":{}}}}}"#, b1.port);
    stack.expect(201, "POST", "/loadbalancers/front/pools/web/backends", Some(&body));
    let listener = format!(r#"{{"name":"http","spec":{{"protocol":"http","port":{port},"default_pool":"web","timeouts":{{"request_ms":1000}}}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    let url = format!("http://127.0.0.1:{port}");
    wait_for("the listener answers", Duration::from_secs(1), || curl(&[&url]).0 == 200).await;

    // Slowloris: headers a byte at a time, never finished; and a client that sends nothing.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let silent = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
            if slow.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        started.elapsed()
    });
    // Others are served meanwhile.
    for _ in 0..5 {
        assert_eq!(curl(&[&url]), (200, "b1".to_string()));
    }
    let cut = trickle.await.expect("the trickle ends");
    assert!(cut < Duration::from_secs(5), "a slow client is cut off near the 1 s request timeout, not after {cut:?}");
    let mut silent = silent;
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "a silent client is closed (or answered 408), not kept: {read:?}");
}
