//! The Rust client crate against real stores: the calls work end to end, scans follow
//! continuations, and a region leader's death is hidden from the caller (retried where the
//! write provably did not happen).

mod common;

use std::time::{Duration, Instant};

use common::Env;
use flaredb_client::{Client, Config, Error, ScanOptions};

fn config(env: &Env, stores: &[usize]) -> Config {
    Config::new(stores.iter().map(|&i| env.stores[i].url())).ca(env.stores[0].ca())
}

#[tokio::test]
async fn the_client_does_crud_batches_cas_and_scans() {
    let env = Env::start(1, &[]).await;
    let db = Client::connect(config(&env, &[0])).await.unwrap();
    assert_eq!(db.put("default", b"a", b"1").await.unwrap(), 1);
    assert_eq!(&db.get("default", b"a").await.unwrap().unwrap().value[..], b"1");
    assert!(db.get("default", b"none").await.unwrap().is_none());
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..30).map(|i| (format!("s/{i:02}").into_bytes(), b"v".to_vec())).collect();
    assert_eq!(db.batch_put("default", &entries).await.unwrap().len(), 30);
    let all = db.scan("default", b"s/", b"s0", ScanOptions::default()).await.unwrap();
    assert_eq!(all.len(), 30);
    let last_five = db
        .scan("default", b"s/", b"s0", ScanOptions { limit: 5, reverse: true, keys_only: true, ..Default::default() })
        .await
        .unwrap();
    let keys: Vec<String> = last_five.iter().map(|r| String::from_utf8(r.key.clone()).unwrap()).collect();
    assert_eq!(keys, ["s/29", "s/28", "s/27", "s/26", "s/25"]);
    let (won, record) = db.compare_and_swap("default", b"a", 1, b"2").await.unwrap();
    assert!(won && record.unwrap().version == 2);
    let (won, record) = db.compare_and_swap("default", b"a", 1, b"3").await.unwrap();
    assert!(!won && record.unwrap().value[..] == b"2"[..]);
    let taken = db.take("default", b"a").await.unwrap().expect("the record taken");
    assert_eq!((&taken.value[..], taken.version), (&b"2"[..], 2));
    assert!(db.take("default", b"a").await.unwrap().is_none());
    assert!(!db.delete("default", b"a").await.unwrap());
    // A refusal is reported as such, with the server's words.
    match db.put("nosuch", b"k", b"v").await {
        Err(Error::Refused(status)) => assert!(status.message().contains("unknown namespace"), "{status:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_leader_failure_is_hidden_from_the_caller() {
    let mut env = Env::start(3, &[]).await;
    let db = Client::connect(config(&env, &[0, 1, 2])).await.unwrap();
    db.put("default", b"warm", b"up").await.unwrap();
    let leader = env.leader().await;
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            let (mut acked, mut unknown) = (Vec::new(), 0);
            let until = Instant::now() + Duration::from_secs(4);
            let mut n = 0;
            while Instant::now() < until {
                let key = format!("w/{n:05}").into_bytes();
                n += 1;
                match db.put("default", &key, b"v").await {
                    Ok(_) => acked.push(key),
                    Err(Error::Unknown(_)) => unknown += 1,
                    Err(e) => panic!("the client surfaced a recoverable failure: {e}"),
                }
            }
            (acked, unknown)
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    env.stores[leader].process.kill9();
    let (acked, unknown) = writer.await.unwrap();
    eprintln!("client through failover: {} writes acknowledged, {unknown} with unknown outcome", acked.len());
    assert!(acked.len() > 50 && unknown <= 3, "{} acked, {unknown} unknown", acked.len());
    for key in &acked {
        assert!(db.get("default", key).await.unwrap().is_some(), "acknowledged {key:?} lost");
    }
}
