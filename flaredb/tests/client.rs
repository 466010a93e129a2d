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

/// Concurrent calls share `BatchGet`/`BatchPut` requests (`coalesce`) and still behave as single
/// calls: every put of a key gets its own version, reads see the last, a batch the store refuses
/// because of one call fails that call alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_share_batches_with_the_semantics_of_single_calls() {
    let env = Env::start(1, &[]).await;
    let db = Client::connect(config(&env, &[0])).await.unwrap();
    db.put("default", b"warm", b"up").await.unwrap();
    let (writers, rounds, keys) = (64usize, 20usize, 8usize);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for round in 0..rounds {
                let key = format!("c/{}", (w + round) % keys);
                let version = db.put("default", key.as_bytes(), format!("{w}-{round}").as_bytes()).await.unwrap();
                versions.push((key, version));
            }
            versions
        }));
    }
    let mut by_key: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    for task in tasks {
        for (key, version) in task.await.unwrap() {
            by_key.entry(key).or_default().push(version);
        }
    }
    let per_key = (writers * rounds / keys) as u64;
    for (key, mut versions) in by_key {
        versions.sort();
        assert_eq!(versions, (1..=per_key).collect::<Vec<_>>(), "{key}: every put has its own version");
    }
    let batched = db.coalesced();
    assert!(batched.batches > 0 && batched.calls > 2 * batched.batches, "puts were batched: {batched:?}");

    // Concurrent reads, of keys that exist and keys that do not, each get its own answer.
    let mut readers = Vec::new();
    for r in 0..64usize {
        let db = db.clone();
        readers.push(tokio::spawn(async move {
            let key = if r % 2 == 0 { format!("c/{}", r % keys) } else { format!("missing/{r}") };
            (key.clone(), db.get("default", key.as_bytes()).await.unwrap())
        }));
    }
    for reader in readers {
        let (key, record) = reader.await.unwrap();
        match record {
            Some(record) => assert_eq!((record.key, record.version), (key.into_bytes(), per_key)),
            None => assert!(key.starts_with("missing/"), "{key} was not found"),
        }
    }

    // One oversized key among concurrent puts: it alone is refused.
    let mut puts = Vec::new();
    for i in 0..32usize {
        let db = db.clone();
        puts.push(tokio::spawn(async move {
            let key = if i == 7 { "k".repeat(5000) } else { format!("crowd/{i}") };
            db.put("default", key.as_bytes(), b"v").await
        }));
    }
    for (i, put) in puts.into_iter().enumerate() {
        match (i, put.await.unwrap()) {
            (7, Err(Error::Refused(status))) => assert!(status.message().contains("key"), "{status:?}"),
            (7, other) => panic!("the oversized key was not refused: {other:?}"),
            (_, answer) => assert_eq!(answer.unwrap(), 1, "crowd/{i}"),
        }
    }
}
