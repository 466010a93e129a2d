//! Three FlareDB stores on loopback: any store takes writes and strong reads; killing the
//! region leader mid-load loses no acknowledged write and reads resume within 2 s; a store
//! restarted from disk catches up; an eventual namespace reads locally (even without a
//! quorum), never shows a value that was not written, and converges.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Env;
use photon_api::flaredb::v1::kv_client::KvClient;
use photon_api::flaredb::v1::{GetRequest, PutRequest, ScanRequest};
use tonic::transport::Channel;

fn put(namespace: &str, key: &str, value: &str) -> PutRequest {
    PutRequest { namespace: namespace.into(), key: key.into(), value: value.into(), ttl_seconds: 0, region: None }
}

async fn read(kv: &mut KvClient<Channel>, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, tonic::Status> {
    let request = GetRequest { namespace: namespace.into(), key: key.into(), region: None };
    Ok(kv.get(request).await?.into_inner().record.map(|r| r.value.to_vec()))
}

/// Every key of `namespace` under `prefix` as `store` sees it (strong: linearizable).
async fn keys(kv: &mut KvClient<Channel>, namespace: &str, prefix: &str) -> BTreeSet<String> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let mut out = BTreeSet::new();
    let mut continuation = Vec::new();
    loop {
        let request = ScanRequest {
            namespace: namespace.into(),
            start: prefix.into(),
            end: end.clone(),
            keys_only: true,
            continuation: continuation.clone(),
            ..Default::default()
        };
        let page = kv.scan(request).await.unwrap().into_inner();
        out.extend(page.records.into_iter().map(|r| String::from_utf8(r.key).unwrap()));
        if page.continuation.is_empty() {
            return out;
        }
        continuation = page.continuation;
    }
}

#[tokio::test]
async fn any_store_writes_and_reads_strongly() {
    let env = Env::start(3, &[]).await;
    for i in 0..3 {
        env.kv(i).put(put("default", &format!("from/{i}"), "v")).await.unwrap();
    }
    for i in 0..3 {
        let seen = keys(&mut env.kv(i), "default", "from/").await;
        assert_eq!(seen.len(), 3, "store {} reads every write: {seen:?}", i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_region_leader_mid_load_loses_nothing_and_reads_resume_quickly() {
    let mut env = Env::start(3, &[]).await;
    let leader = env.leader().await;
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let targets: Vec<_> = survivors.iter().map(|&i| env.kv(i)).collect();
            let (stop, acked) = (stop.clone(), acked.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("load/{w}/{n:06}");
                    let mut kv = targets[n % targets.len()].clone();
                    let attempt = tokio::time::timeout(Duration::from_secs(5), kv.put(put("default", &key, "v")));
                    match attempt.await {
                        Ok(Ok(_)) => {
                            acked.lock().unwrap().insert(key);
                        }
                        _ => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;

    env.stores[leader].process.kill9();
    let killed_at = Instant::now();
    let mut reader = env.kv(survivors[0]);
    loop {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), read(&mut reader, "default", "probe")).await
        {
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(10), "strong reads never resumed");
    }
    let resumed = killed_at.elapsed();
    eprintln!("flaredb failover: strong reads resumed {resumed:?} after kill -9 of the region leader");
    assert!(resumed < Duration::from_secs(2), "reads resumed after {resumed:?}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50, "the load ran: {} writes acknowledged", acked.len());
    let stored = keys(&mut env.kv(survivors[1]), "default", "load/").await;
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost, e.g. {:?}", lost.len(), lost.first());

    // The killed store restarts from its data dir and catches up.
    env.stores[leader].process.start();
    env.stores[leader].wait_healthy(Duration::from_secs(30)).await;
    env.kv(survivors[0]).put(put("default", "after/restart", "v")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = keys(&mut env.kv(leader), "default", "load/").await;
        if seen.is_superset(&acked) {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted store has {} of {} keys", seen.len(), acked.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_eventual_namespace_reads_locally_never_invents_values_and_converges() {
    let config = tempfile::tempdir().unwrap();
    let path = config.path().join("flaredb.toml");
    std::fs::write(&path, "[namespaces]\ndefault = \"strong\"\ncache = \"eventual\"\n").unwrap();
    let mut env = Env::start(3, &["--config", path.to_str().unwrap()]).await;
    let leader = env.leader().await;
    let follower = (leader + 1) % 3;
    let mut writer = env.kv(leader);
    let mut replica = env.kv(follower);
    let written: BTreeSet<String> = (0..50).map(|i| format!("v{i}")).collect();
    let mut last = None;
    for i in 0..50 {
        writer.put(put("cache", "k", &format!("v{i}"))).await.unwrap();
        // A replica read may lag, but only ever shows a value that was written, never going back.
        if let Some(value) = read(&mut replica, "cache", "k").await.unwrap() {
            let value = String::from_utf8(value).unwrap();
            assert!(written.contains(&value), "replica returned {value:?}, never written");
            let n: u32 = value[1..].parse().unwrap();
            assert!(last.is_none_or(|l| n >= l), "replica went back from v{last:?} to {value}");
            last = Some(n);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for store in 0..3 {
        loop {
            if read(&mut env.kv(store), "cache", "k").await.unwrap().as_deref() == Some(b"v49".as_slice()) {
                break;
            }
            assert!(Instant::now() < deadline, "store {} never converged", store + 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Cut off from any quorum, a replica still answers eventual reads from its own state, and
    // refuses strong ones.
    writer.put(put("default", "strong-key", "x")).await.unwrap();
    env.stores[leader].process.kill9();
    env.stores[(leader + 2) % 3].process.kill9();
    assert_eq!(read(&mut replica, "cache", "k").await.unwrap().as_deref(), Some(b"v49".as_slice()));
    let mut request =
        tonic::Request::new(GetRequest { namespace: "default".into(), key: "strong-key".into(), region: None });
    request.set_timeout(Duration::from_secs(3));
    assert!(replica.get(request).await.is_err(), "a strong read without a quorum must fail");
}

#[tokio::test]
async fn three_stores_form_a_cluster_from_cluster_config_json() {
    let ca = tempfile::tempdir().unwrap();
    let chainfire_raft = format!("127.0.0.1:{}", photon_testkit::free_port());
    let mut chainfire =
        photon_testkit::TestServer::with_shared_ca("chainfire-server", ca.path(), &["--raft-listen", &chainfire_raft]);
    chainfire.process.start();
    chainfire.wait_healthy(Duration::from_secs(30)).await;
    let peers: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", photon_testkit::free_port())).collect();
    let files = tempfile::tempdir().unwrap();
    let mut stores = Vec::new();
    for peer in &peers {
        let doc = serde_json::json!({
            "node_id": peer, "bootstrap": true, "leader_url": chainfire.url(),
            "initial_peers": [], "flaredb_peers": peers,
        });
        let path = files.path().join(format!("{}.json", peer.replace(':', "_")));
        std::fs::write(&path, doc.to_string()).unwrap();
        let mut store = photon_testkit::TestServer::with_shared_ca(
            "flaredb-server",
            ca.path(),
            &["--raft-listen", peer, "--cluster-config", path.to_str().unwrap()],
        );
        store.process.start();
        stores.push(store);
    }
    for store in &mut stores {
        let health = store.wait_healthy(Duration::from_secs(30)).await;
        assert_eq!(health["regions"], 1, "{health}");
    }
    let (code, body) = common::curl(&stores[0], "GET", "/admin/cluster/members", None);
    assert_eq!(code, 200);
    let ids: Vec<u64> = body["members"].as_array().unwrap().iter().filter_map(|m| m["id"].as_u64()).collect();
    assert_eq!(ids, vec![1, 2, 3], "{body}");
}
