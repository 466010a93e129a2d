//! Region splits: a split keeps every key and scans cross the new boundary in order, the new
//! regions survive a restart, and regions that split on their own under concurrent writes on
//! three stores lose nothing.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{curl, Env};
use flaredb_client::{Client, Config, ScanOptions};
use photon_api::flaredb::v1::regions_client::RegionsClient;
use photon_api::flaredb::v1::{GetRequest, ListRegionsRequest, PutRequest, RegionEpoch};

async fn regions(env: &Env, store: usize) -> Vec<photon_api::flaredb::v1::Region> {
    let options = photon_client::ChannelOptions { ca: Some(env.stores[store].ca()), ..Default::default() };
    let channel = photon_client::lazy_channel(&env.stores[store].url(), &options).unwrap();
    RegionsClient::new(channel).list_regions(ListRegionsRequest {}).await.unwrap().into_inner().regions
}

fn client_config(env: &Env) -> Config {
    Config::new(env.stores.iter().map(|s| s.url())).ca(env.stores[0].ca())
}

#[tokio::test]
async fn a_split_keeps_every_key_scans_cross_it_and_it_survives_a_restart() {
    let mut env = Env::start(1, &[]).await;
    let db = Client::connect(client_config(&env)).await.unwrap();
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..100).map(|i| (format!("k{i:03}").into_bytes(), b"v".to_vec())).collect();
    db.batch_put("default", &entries).await.unwrap();
    let before = regions(&env, 0).await[0].epoch;

    let (code, body) = curl(&env.stores[0], "POST", "/api/v1/regions/1/split", Some(r#"{"key":"k050"}"#));
    assert_eq!(code, 200, "{body}");
    let right = body["right"]["id"].as_u64().unwrap();
    assert_ne!(right, 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while regions(&env, 0).await.iter().filter(|r| r.leader_store_id != 0).count() < 2 {
        assert!(Instant::now() < deadline, "the new region never got a leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A request routed by the map as it was before the split is told so, on either side; one
    // routed by the current map is served. (The client `db` learned the old map: its calls
    // below follow these answers.)
    let mut kv = env.kv(0);
    let after = regions(&env, 0).await.into_iter().find(|r| r.id == 1).unwrap().epoch;
    assert!(after > before, "a split moves the epoch: {before} -> {after}");
    for (key, region) in [("k010", 1), ("k090", right)] {
        let stale = Some(RegionEpoch { id: 1, epoch: before });
        let get = GetRequest { namespace: "default".into(), key: key.into(), region: stale };
        let refused = kv.get(get).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
        assert_eq!(refused.metadata().get("flaredb-error").unwrap(), "stale-epoch");
        assert!(refused.message().contains(&format!("now in region {region}")), "{}", refused.message());
        let put = PutRequest {
            namespace: "default".into(),
            key: key.into(),
            value: "never".into(),
            ttl_seconds: 0,
            region: Some(RegionEpoch { id: 1, epoch: before }),
        };
        assert_eq!(kv.put(put).await.unwrap_err().code(), tonic::Code::FailedPrecondition, "nothing written");
        assert_eq!(&db.get("default", key.as_bytes()).await.unwrap().unwrap().value[..], b"v");
    }
    let current = Some(RegionEpoch { id: 1, epoch: after });
    let get = GetRequest { namespace: "default".into(), key: "k010".into(), region: current };
    assert_eq!(&kv.get(get).await.unwrap().into_inner().record.unwrap().value[..], b"v");

    // A page stops at the boundary and the continuation carries on into the right region.
    let (_, page) = curl(&env.stores[0], "GET", "/api/v1/scan?start=k040&end=k060", None);
    assert_eq!(page["records"].as_array().unwrap().len(), 10, "{page}");
    let continuation = page["continuation"].as_str().expect("a continuation at the boundary").to_string();
    let (_, next) =
        curl(&env.stores[0], "GET", &format!("/api/v1/scan?start=k040&end=k060&continuation={continuation}"), None);
    assert_eq!(next["records"][0]["key"], "k050", "{next}");

    let all = db.scan("default", b"", b"", ScanOptions::default()).await.unwrap();
    let keys: Vec<Vec<u8>> = all.iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys, entries.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), "every key, in order");
    let reversed = db.scan("default", b"", b"", ScanOptions { reverse: true, ..Default::default() }).await.unwrap();
    assert_eq!(reversed.len(), 100);
    assert_eq!(reversed[0].key, b"k099");
    // Writes land on both sides.
    db.put("default", b"k010", b"left").await.unwrap();
    db.put("default", b"k090", b"right").await.unwrap();

    // Bad splits are refused with a reason.
    let (code, body) =
        curl(&env.stores[0], "POST", &format!("/api/v1/regions/{right}/split"), Some(r#"{"key":"k010"}"#));
    assert_eq!(code, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("not strictly inside"), "{body}");

    env.stores[0].process.kill9();
    env.stores[0].process.start();
    env.stores[0].wait_healthy(Duration::from_secs(30)).await;
    assert_eq!(regions(&env, 0).await.len(), 2, "both regions are back after a restart");
    let db = Client::connect(client_config(&env)).await.unwrap();
    assert_eq!(&db.get("default", b"k010").await.unwrap().unwrap().value[..], b"left");
    assert_eq!(&db.get("default", b"k090").await.unwrap().unwrap().value[..], b"right");
    assert_eq!(db.scan("default", b"", b"", ScanOptions::default()).await.unwrap().len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_split_on_their_own_under_concurrent_writes_and_lose_nothing() {
    let config = tempfile::tempdir().unwrap();
    let path = config.path().join("flaredb.toml");
    std::fs::write(&path, "[regions]\nsplit_keys = 150\ncheck_interval_ms = 200\n").unwrap();
    let env = Env::start(3, &["--config", path.to_str().unwrap()]).await;
    let db = Client::connect(client_config(&env)).await.unwrap();

    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for n in 0..250u32 {
                    // Spread the writers over the key space so every region keeps taking writes.
                    let key = format!("{:03}-{w}", (n * 37 + w * 11) % 1000).into_bytes();
                    match db.put("default", &key, b"v").await {
                        Ok(_) => acked.push(key),
                        Err(e) => panic!("write failed during splits: {e}"),
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked = BTreeSet::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let count = regions(&env, 0).await.len();
        if count >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "only {count} regions after 1000 keys with split_keys = 150");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let scanned = db.scan("default", b"", b"", ScanOptions::default()).await.unwrap();
    let keys: Vec<Vec<u8>> = scanned.iter().map(|r| r.key.clone()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "a scan across regions is in order");
    let seen: BTreeSet<Vec<u8>> = keys.into_iter().collect();
    let lost: Vec<_> = acked.difference(&seen).collect();
    assert!(lost.is_empty(), "{} acknowledged writes missing after splits, e.g. {:?}", lost.len(), lost.first());
    // Every store replicates every region.
    for store in 0..3 {
        let count = regions(&env, store).await.len();
        assert!(count >= 4, "store {} has {count} regions", store + 1);
    }
}
