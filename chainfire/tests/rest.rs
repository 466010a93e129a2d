//! The REST API on the API port, through curl: key reads and writes, members, and clear
//! errors for bad requests.

use std::process::Command;
use std::time::Duration;

use photon_testkit::{free_port, TestServer};
use serde_json::Value;

async fn start() -> TestServer {
    let raft = format!("127.0.0.1:{}", free_port());
    let mut server = TestServer::start("chainfire-server", &["--raft-listen", &raft]);
    server.wait_healthy(Duration::from_secs(30)).await;
    server
}

/// `curl -X method url [-d body]`: (HTTP status, JSON body).
fn curl(server: &TestServer, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut command = Command::new("curl");
    command.args(["--silent", "--cacert"]).arg(server.ca()).args(["-X", method, "-w", "\n%{http_code}"]);
    if let Some(body) = body {
        command.args(["-H", "content-type: application/json", "--data-binary", body]);
    }
    let out = command.arg(format!("{}{path}", server.url())).output().expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (json, code) = text.rsplit_once('\n').unwrap_or_else(|| panic!("unexpected curl output {text:?}"));
    (code.parse().unwrap(), serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test]
async fn rest_keys_members_and_errors() {
    let server = start().await;
    let (code, body) = curl(&server, "PUT", "/api/v1/kv/config/app", Some(r#"{"value":"v1"}"#));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["revision"], 2);
    let (_, body) = curl(&server, "PUT", "/api/v1/kv/config/app", Some(r#"{"value":"v2"}"#));
    assert_eq!(body["prev_kv"]["value"], "v1");

    let (code, body) = curl(&server, "GET", "/api/v1/kv/config/app", None);
    assert_eq!(code, 200);
    assert_eq!((body["kv"]["value"].as_str(), body["kv"]["version"].as_i64()), (Some("v2"), Some(2)));

    let (code, body) = curl(&server, "DELETE", "/api/v1/kv/config/app", None);
    assert_eq!((code, body["deleted"].as_i64()), (200, Some(1)));
    let (code, body) = curl(&server, "GET", "/api/v1/kv/config/app", None);
    assert_eq!(code, 404);
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("config/app"));

    let (code, body) = curl(&server, "PUT", "/api/v1/kv/x", Some("not json"));
    assert_eq!(code, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("\"value\""), "{body}");
    let (code, body) = curl(&server, "PUT", "/api/v1/kv/x", Some(r#"{"value": 7}"#));
    assert_eq!(code, 400, "a wrong type is refused: {body}");
    let (code, body) = curl(&server, "PUT", "/api/v1/kv/x", Some(r#"{"value":"v","lease":99}"#));
    assert_eq!((code, body["error"]["code"].as_str()), (404, Some("lease_not_found")));
    let (code, _) = curl(&server, "GET", "/api/v1/kv/x", None);
    assert_eq!(code, 404, "no refused request wrote anything");

    let (code, body) = curl(&server, "GET", "/admin/cluster/members", None);
    assert_eq!(code, 200);
    assert_eq!(body["members"][0]["role"], "voter");
    assert_eq!(body["members"][0]["leader"], true);
}
