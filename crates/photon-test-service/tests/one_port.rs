//! gRPC, `/health` and `/metrics` on one TLS port, trusting the development CA.

use std::process::Command;
use std::time::Duration;

use photon_api::runtime::v1::runtime_client::RuntimeClient;
use photon_api::runtime::v1::{GetServerInfoRequest, HealthStatus};
use photon_client::{channel, get, ChannelOptions};
use photon_testkit::TestServer;

const SERVICE: &str = "photon-test-service";

#[tokio::test]
async fn grpc_health_and_metrics_share_one_tls_port() {
    let mut server = TestServer::start(SERVICE, &["--name", "alpha"]);
    let health = server.wait_healthy(Duration::from_secs(20)).await;
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["name"], "alpha");

    // A real gRPC call through the generated client, over TLS trusting the dev CA.
    let options = ChannelOptions { ca: Some(server.ca()), ..Default::default() };
    let mut client = RuntimeClient::new(channel(&server.url(), &options).await.unwrap());
    let info = client.get_server_info(GetServerInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.service, SERVICE);
    assert_eq!(info.status, HealthStatus::Healthy as i32);
    let doc: serde_json::Value = serde_json::from_str(&info.health_json).unwrap();
    assert_eq!(doc["name"], "alpha");

    // REST on the same port: a templated route, then an unknown one.
    let echo =
        get(&format!("{}/api/v1/echo/hello", server.url()), Some(&server.ca()), Duration::from_secs(5)).await.unwrap();
    assert_eq!(echo.status, 200);
    let missing = get(&format!("{}/api/v1/nothing-here", server.url()), Some(&server.ca()), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(missing.status, 404);

    let metrics = get(&format!("{}/metrics", server.url()), Some(&server.ca()), Duration::from_secs(5)).await.unwrap();
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    for expected in [
        r#"photon_requests_total{protocol="grpc",route="/photon.runtime.v1.Runtime/GetServerInfo",code="0"} 1"#,
        r#"photon_requests_total{protocol="http",route="/api/v1/echo/{word}",code="200"} 1"#,
        r#"photon_requests_total{protocol="http",route="unmatched",code="404"} 1"#,
        r#"photon_request_duration_seconds_bucket{le="+Inf",protocol="grpc",route="/photon.runtime.v1.Runtime/GetServerInfo",code="0"} 1"#,
        r#"photon_build_info{service="photon-test-service",version="#,
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
    assert!(text.contains(r#"route="/health",code="200""#), "health probes are counted:\n{text}");
}

#[tokio::test]
async fn unknown_grpc_methods_are_unimplemented_and_unknown_routes_404() {
    let mut server = TestServer::start(SERVICE, &[]);
    server.wait_healthy(Duration::from_secs(20)).await;
    let options = ChannelOptions { ca: Some(server.ca()), ..Default::default() };
    let mut grpc = tonic::client::Grpc::new(channel(&server.url(), &options).await.unwrap());
    for path in ["/photon.runtime.v1.Runtime/NoSuchMethod", "/no.such.Service/Call"] {
        grpc.ready().await.unwrap();
        let codec = tonic_prost::ProstCodec::<GetServerInfoRequest, photon_api::runtime::v1::ServerInfo>::default();
        let result = grpc
            .unary(tonic::Request::new(GetServerInfoRequest {}), http::uri::PathAndQuery::from_static(path), codec)
            .await;
        assert_eq!(result.unwrap_err().code(), tonic::Code::Unimplemented, "{path}");
    }
    let missing =
        get(&format!("{}/api/v1/nope", server.url()), Some(&server.ca()), Duration::from_secs(5)).await.unwrap();
    assert_eq!(missing.status, 404);
    let body: serde_json::Value = serde_json::from_slice(&missing.body).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("/api/v1/nope"));

    let metrics = get(&format!("{}/metrics", server.url()), Some(&server.ca()), Duration::from_secs(5)).await.unwrap();
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    assert!(
        text.contains(r#"photon_requests_total{protocol="grpc",route="unknown",code="12"} 2"#),
        "client-chosen paths do not become labels:\n{text}"
    );
}

#[tokio::test]
async fn curl_reads_health_over_tls_with_the_dev_ca() {
    let mut server = TestServer::start(SERVICE, &[]);
    server.wait_healthy(Duration::from_secs(20)).await;
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--http1.1", "--cacert"])
        .arg(server.ca())
        .args(["--write-out", "\n%{http_code}", "-H", "x-request-id: curl-check-1"])
        .args(["--dump-header", "-"])
        .arg(format!("{}/health", server.url()))
        .output()
        .expect("curl must be installed (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.trim_end().ends_with("200"), "{stdout}");
    assert!(stdout.contains(r#""status":"healthy""#), "{stdout}");
    assert!(stdout.to_ascii_lowercase().contains("x-request-id: curl-check-1"), "the request id is echoed: {stdout}");

    // HTTP/2 over TLS (ALPN h2) works for curl too.
    let h2 = Command::new("curl")
        .args(["--silent", "--http2", "--cacert"])
        .arg(server.ca())
        .args(["--write-out", "%{http_version}", "--output", "/dev/null"])
        .arg(format!("{}/health", server.url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&h2.stdout), "2");

    // Without trusting the CA, curl must refuse the certificate.
    let untrusted = Command::new("curl")
        .args(["--silent", "--output", "/dev/null"])
        .arg(format!("{}/health", server.url()))
        .status()
        .unwrap();
    assert!(!untrusted.success());
}

#[tokio::test]
async fn unhealthy_and_degraded_answer_503_with_their_status() {
    for status in ["unhealthy", "degraded"] {
        let server = TestServer::start(SERVICE, &[]);
        // Config via the environment: the service's own section.
        drop(server);
        let mut server = TestServer::new(SERVICE, &[]);
        server.process.env("PHOTON_TEST_TEST_HEALTH", status).start();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let answer = loop {
            if let Ok(answer) = server.health().await {
                break answer;
            }
            assert!(std::time::Instant::now() < deadline, "no /health answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(answer.http_status, 503, "{status}");
        assert_eq!(answer.status(), Some(status));
    }
}

#[tokio::test]
async fn restart_reuses_the_dev_ca_and_certificate() {
    let mut server = TestServer::start(SERVICE, &[]);
    server.wait_healthy(Duration::from_secs(20)).await;
    let ca_before = std::fs::read(server.ca()).unwrap();
    let cert = server.dir().join("data/tls/photon-test-service.crt");
    let cert_before = std::fs::read(&cert).unwrap();
    server.process.kill9();
    server.process.start();
    server.wait_healthy(Duration::from_secs(20)).await;
    assert_eq!(ca_before, std::fs::read(server.ca()).unwrap());
    assert_eq!(cert_before, std::fs::read(&cert).unwrap());
    assert!(server.process.logs().contains("cert_reused=true"), "the log says the certificate was reused");
}

#[tokio::test]
async fn a_second_port_serves_routes_in_tls_or_plaintext_and_drains() {
    for plaintext in [false, true] {
        let extra = photon_testkit::free_port();
        let mut server = TestServer::new(SERVICE, &[]);
        server
            .process
            .env("PHOTON_TEST_TEST_EXTRA_LISTEN", format!("127.0.0.1:{extra}"))
            .env("PHOTON_TEST_TEST_EXTRA_PLAINTEXT", plaintext.to_string())
            .start();
        server.wait_healthy(Duration::from_secs(30)).await;
        let url = format!("{}://127.0.0.1:{extra}/api/v1/echo/hi", if plaintext { "http" } else { "https" });
        let out =
            std::process::Command::new("curl").args(["-sf", "--cacert"]).arg(server.ca()).arg(&url).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"hi\""), "{url}: {out:?}");
        server.process.signal(libc::SIGTERM);
        let status = server.process.wait_exit(Duration::from_secs(30)).expect("exits");
        assert!(status.success(), "{status:?}");
    }
}
