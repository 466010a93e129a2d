//! FlareDB Requires chainfire: without it at start the store exits non-zero and says why;
//! losing it later degrades `/health` but the store keeps serving the regions it knows.

mod common;

use std::time::{Duration, Instant};

use common::{curl, Env};
use photon_api::flaredb::v1::{GetRequest, PutRequest};
use photon_testkit::{free_port, TestServer};

#[tokio::test]
async fn without_chainfire_it_exits_non_zero_and_says_why() {
    let raft = format!("127.0.0.1:{}", free_port());
    let nowhere = format!("https://127.0.0.1:{}", free_port());
    let mut store = TestServer::new("flaredb-server", &["--raft-listen", &raft, "--chainfire", &nowhere]);
    store.process.env("FLAREDB_CHAINFIRE_CONNECT_TIMEOUT_MS", "1000").start();
    let status = store.process.wait_exit(Duration::from_secs(30)).expect("flaredb-server exits");
    assert!(!status.success(), "{status:?}");
    let logs = store.process.logs();
    assert!(logs.contains("chainfire is unreachable") && logs.contains(&nowhere), "{logs}");
}

#[tokio::test]
async fn losing_chainfire_degrades_health_and_keeps_serving() {
    let mut env = Env::start(1, &[]).await;
    env.chainfire.process.kill9();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, body) = curl(&env.stores[0], "GET", "/health", None);
        if code == 503 && body["status"] == "degraded" && body["chainfire"] == "unreachable" {
            break;
        }
        assert!(Instant::now() < deadline, "health never reported the lost chainfire: {code} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut kv = env.kv(0);
    let put = PutRequest {
        namespace: "default".into(),
        key: "still".into(),
        value: "serving".into(),
        ttl_seconds: 0,
        region: None,
    };
    kv.put(put).await.expect("writes go on without chainfire");
    let got = kv
        .get(GetRequest { namespace: "default".into(), key: "still".into(), region: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&got.record.unwrap().value[..], b"serving");
}
