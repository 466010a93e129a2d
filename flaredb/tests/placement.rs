//! Placement: a store that joins a running cluster receives replicas until every store holds
//! its fair share, and the replicas of a store that stays gone are replaced on the others.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Env;
use flaredb_client::{Client, Config};
use photon_api::flaredb::v1::regions_client::RegionsClient;
use photon_api::flaredb::v1::{GetRequest, ListRegionsRequest};

/// Region id → its replicas' store ids, as store `i` sees the regions it holds.
async fn held(env: &Env, i: usize) -> BTreeMap<u64, Vec<u64>> {
    let options = photon_client::ChannelOptions { ca: Some(env.stores[i].ca()), ..Default::default() };
    let channel = photon_client::lazy_channel(&env.stores[i].url(), &options).unwrap();
    let Ok(answer) = RegionsClient::new(channel).list_regions(ListRegionsRequest {}).await else {
        return BTreeMap::new();
    };
    answer.into_inner().regions.into_iter().map(|r| (r.id, r.peers.iter().map(|p| p.store_id).collect())).collect()
}

/// Every store's log lines about placement, for failure messages.
fn placement_log(env: &Env) -> String {
    let mut out = String::new();
    for (i, store) in env.stores.iter().enumerate() {
        let relevant = |l: &&str| {
            l.contains("flaredb::placement") || l.contains("flaredb::replicas") || l.contains("placement round")
        };
        for line in store.process.logs().lines().filter(relevant) {
            out.push_str(&format!("store {}: {}\n", i + 1, line.get(..300).unwrap_or(line)));
        }
    }
    out
}

/// Region id → replicas, as each region's leader lists them.
async fn authoritative(env: &Env) -> BTreeMap<u64, Vec<u64>> {
    let mut truth = BTreeMap::new();
    for i in 0..env.stores.len() {
        let options = photon_client::ChannelOptions { ca: Some(env.stores[i].ca()), ..Default::default() };
        let channel = photon_client::lazy_channel(&env.stores[i].url(), &options).unwrap();
        let Ok(answer) = RegionsClient::new(channel).list_regions(ListRegionsRequest {}).await else { continue };
        for region in answer.into_inner().regions {
            if region.leader_store_id == i as u64 + 1 {
                truth.insert(region.id, region.peers.iter().map(|p| p.store_id).collect::<Vec<_>>());
            }
        }
    }
    truth
}

const CONFIG: &str = "[regions]\nsplit_keys = 60\ncheck_interval_ms = 200\n\
                      [placement]\nreplace_after_ms = 2000\ninterval_ms = 300\n";

/// Three stores with `CONFIG`, 300 keys written (so the data splits into several regions).
async fn loaded_cluster(config: &tempfile::TempDir) -> (Env, Client, Vec<Vec<u8>>) {
    let path = config.path().join("flaredb.toml");
    std::fs::write(&path, CONFIG).unwrap();
    let env = Env::start(3, &["--config", path.to_str().unwrap()]).await;
    let db = Client::connect(Config::new(env.stores.iter().map(|s| s.url())).ca(env.stores[0].ca())).await.unwrap();
    let mut keys = Vec::new();
    for i in 0..300 {
        let key = format!("key{i:04}").into_bytes();
        db.put("default", &key, b"v").await.unwrap();
        keys.push(key);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while held(&env, 0).await.len() < 4 {
        assert!(Instant::now() < deadline, "the data never split into 4 regions");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (env, db, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_store_receives_replicas_and_serves_them() {
    let config = tempfile::tempdir().unwrap();
    let (mut env, db, keys) = loaded_cluster(&config).await;
    let path = config.path().join("flaredb.toml");
    let fourth = env.join(&["--config", path.to_str().unwrap()]).await;

    // 3 replicas of every region over 4 stores: every store ends within one replica of every
    // other, and holds exactly the replicas its regions' leaders list (removed ones are dropped).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let views = futures_util::future::join_all((0..4).map(|i| held(&env, i))).await;
        let truth = authoritative(&env).await;
        let load: Vec<usize> = (1..=4u64).map(|s| truth.values().filter(|peers| peers.contains(&s)).count()).collect();
        let exact = (0..4).all(|i| {
            let listed: Vec<u64> =
                truth.iter().filter(|(_, p)| p.contains(&(i as u64 + 1))).map(|(id, _)| *id).collect();
            views[i].keys().copied().collect::<Vec<_>>() == listed
        });
        let (most, fewest) = (load.iter().max().copied().unwrap_or(0), load.iter().min().copied().unwrap_or(0));
        if load[fourth] > 0 && most <= fewest + 1 && exact && truth.values().all(|p| p.len() == 3) {
            eprintln!("placement balanced: {load:?} replicas per store over {} regions", truth.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never balanced: load {load:?}, regions {truth:?}, held {views:?}\n{}",
            placement_log(&env)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The new store answers strong reads from its own replicas: every key it holds is there.
    let mut kv = env.kv(fourth);
    let mut served = 0;
    for key in &keys {
        if let Ok(answer) = kv.get(GetRequest { namespace: "default".into(), key: key.clone(), region: None }).await {
            assert!(answer.into_inner().record.is_some(), "{key:?} missing on the new store");
            served += 1;
        }
    }
    assert!(served > 0, "the new store served none of its keys");
    // And the cluster as a whole still has everything.
    for key in &keys {
        assert!(db.get("default", key).await.unwrap().is_some(), "{key:?} lost while replicas moved");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replicas_of_a_lost_store_are_replaced() {
    let config = tempfile::tempdir().unwrap();
    let (mut env, db, keys) = loaded_cluster(&config).await;
    let path = config.path().join("flaredb.toml");
    let fourth = env.join(&["--config", path.to_str().unwrap()]).await;
    // Wait until the new store holds something, then lose one of the original stores.
    let deadline = Instant::now() + Duration::from_secs(60);
    while held(&env, fourth).await.is_empty() {
        assert!(Instant::now() < deadline, "the fourth store never got a replica");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let lost = 0;
    env.stores[lost].process.kill9();
    let lost_id = (lost + 1) as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = authoritative(&env).await;
        let pending: Vec<_> = all.iter().filter(|(_, peers)| peers.contains(&lost_id) || peers.len() < 3).collect();
        if !all.is_empty() && pending.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "regions still on the lost store or short of replicas: {pending:?}\n{}",
            placement_log(&env)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for key in &keys {
        assert!(db.get("default", key).await.unwrap().is_some(), "{key:?} lost with the store");
    }
}
