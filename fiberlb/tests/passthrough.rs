//! TLS passthrough: fiberlb routes by the client's SNI to backends that terminate TLS
//! themselves (curl verifies the backend's own certificate through fiberlb); something that
//! is not TLS is closed.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{wait_for, Stack};
use photon_testkit::free_port;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A TLS backend with `cert` answering any HTTP request with `name`.
async fn tls_backend(name: &'static str, cert: &photon_tls::IssuedCert) -> u16 {
    let identity = photon_tls::load_identity(&cert.cert_path, &cert.key_path).expect("the identity");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(identity.cert_chain, identity.key)
        .expect("a server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let mut tls = BufReader::new(tls);
                loop {
                    let mut line = String::new();
                    if tls.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let response = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}", name.len());
                let _ = tls.get_mut().write_all(response.as_bytes()).await;
                let _ = tls.get_mut().shutdown().await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_routes_by_sni_to_backends_that_terminate_tls() {
    let stack = Stack::start().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let (ca, _) = photon_tls::DevCa::load_or_create(&dir.path().join("ca")).expect("a CA");
    let a = ca.issue(&dir.path().join("certs"), "a", &["a.example".into()]).expect("a's certificate");
    let b = ca.issue(&dir.path().join("certs"), "b", &["x.b.example".into()]).expect("b's certificate");
    let (port_a, port_b) = (tls_backend("tls-a", &a).await, tls_backend("tls-b", &b).await);
    let port = free_port();
    stack.expect(201, "POST", "/loadbalancers", Some(r#"{"name":"front","spec":{"vip":"127.0.0.1"}}"#));
    for (pool, backend_port) in [("a", port_a), ("b", port_b)] {
        stack.expect(201, "POST", "/loadbalancers/front/pools", Some(&format!(r#"{{"name":"{pool}","spec":{{}}}}"#)));
        let body = format!(r#"{{"name":"only","spec":{{"address":"127.0.0.1","port":{backend_port}}}}}"#);
        stack.expect(201, "POST", &format!("/loadbalancers/front/pools/{pool}/backends"), Some(&body));
    }
    let listener = format!(r#"{{"name":"tls","spec":{{"protocol":"tls_passthrough","port":{port},"default_pool":"a"}}}}"#);
    stack.expect(201, "POST", "/loadbalancers/front/listeners", Some(&listener));
    let rule = r#"{"name":"b","spec":{"priority":1,"match":{"host":"*.b.example"},"action":{"forward":{"pool":"b"}}}}"#;
    stack.expect(201, "POST", "/loadbalancers/front/listeners/tls/rules", Some(rule));

    let ca_path = ca.cert_path();
    let get = |host: &str| {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "--cacert"])
            .arg(&ca_path)
            .args(["--resolve", &format!("{host}:{port}:127.0.0.1"), &format!("https://{host}:{port}/")])
            .output()
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    wait_for("passthrough answers", Duration::from_secs(2), || get("a.example") == "tls-a").await;
    assert_eq!(get("x.b.example"), "tls-b", "the SNI routes to b's pool, whose backend's certificate curl verifies");
    // Plain text is not TLS: the connection is closed, nothing forwarded.
    let out = Command::new("curl").args(["-s", "--max-time", "3", &format!("http://127.0.0.1:{port}/")]).output().expect("curl");
    assert!(!out.status.success() && out.stdout.is_empty(), "plain HTTP on a passthrough port is closed");
}
