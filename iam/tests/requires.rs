//! IAM Requires flaredb: without it at start iam-server exits non-zero naming the endpoints;
//! losing it later turns `/health` degraded while issued tokens keep verifying.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use photon_api::iam::v1 as pb;
use photon_testkit::{free_port, TestServer};

#[tokio::test]
async fn without_flaredb_it_exits_non_zero_and_says_why() {
    let nowhere = format!("https://127.0.0.1:{}", free_port());
    let mut iam = TestServer::new("iam-server", &["--flaredb", &nowhere]);
    iam.process.env("IAM_FLAREDB_CONNECT_TIMEOUT_MS", "1000").start();
    let status = iam.process.wait_exit(Duration::from_secs(60)).expect("iam-server exits");
    assert!(!status.success(), "{status:?}");
    let logs = iam.process.logs();
    assert!(logs.contains(&nowhere) && logs.contains("flaredb"), "{logs}");
}

#[tokio::test]
async fn losing_flaredb_degrades_health_and_tokens_still_verify() {
    let mut env = Env::start(&[]).await;
    let token = env.admin_token().await;
    env.flaredb.process.kill9();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = env.iam.curl("GET", "/health", None, &[]);
        if code == 503 && body["status"] == "degraded" && body["database"] == "unreachable" {
            assert!(body["version"].is_string(), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "health never reported the lost database: {code} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answer = env.tokens().validate_token(pb::ValidateTokenRequest { token }).await.unwrap().into_inner();
    assert_eq!(answer.principal, "user:admin");
}
