//! Linearizability of a strong namespace under failures: concurrent clients put, get and
//! compare-and-swap two keys through random stores of a three-store cluster while a nemesis
//! kills (-9) and restarts the region leader, cuts a store (the leader half of the time) off from
//! the others, or moves leadership with a campaign; the history must have a valid linearization
//! (photon-testkit's checker, shared with chainfire). Isolations and campaigns are what test the
//! leader's lease reads: a cut-off leader must stop answering before anyone else can lead.
//!
//! CAS here is on versions; the checker's register model compares values. They agree because
//! every value is written once (unique per client and sequence) and keys are never deleted: a
//! key is at version v exactly when it holds the value a client read at version v. Keys are
//! created before the clients start, so a CAS always has a version to expect.
//!
//! `scripts/soak` runs many longer, seeded passes: PHOTON_CHECK_RUNS, _SECONDS, _SEED.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Env;
use photon_api::flaredb::v1::kv_client::KvClient;
use photon_api::flaredb::v1::{CampaignRequest, CompareAndSwapRequest, GetRequest, PutRequest};
use photon_testkit::linearizability::workload::{client_rng, timed as request, BACKOFF, CLIENTS, KEYS};
use photon_testkit::linearizability::{check, Event, Op};
use photon_testkit::seeded::{env_u64 as env, Rng};
use tonic::transport::Channel;

async fn client(
    id: u64,
    seed: u64,
    stores: Vec<KvClient<Channel>>,
    start: Instant,
    until: Instant,
    history: Arc<Mutex<Vec<Event>>>,
) {
    let mut rng = client_rng(seed, id);
    // Per key: the value and version this client last read.
    let mut last_read: std::collections::HashMap<String, (String, u64)> = Default::default();
    let mut seq = 0;
    let now = |start: Instant| start.elapsed().as_nanos() as u64;
    while Instant::now() < until {
        let mut kv = stores[rng.below(stores.len() as u64) as usize].clone();
        let key = KEYS[rng.below(KEYS.len() as u64) as usize].to_string();
        let invoked = now(start);
        let roll = rng.below(10);
        let event = if roll < 4 {
            seq += 1;
            let value = format!("c{id}-{seq}");
            let put = PutRequest {
                namespace: "default".into(),
                key: key.clone().into(),
                value: value.clone().into(),
                ttl_seconds: 0,
                region: None,
            };
            match kv.put(request(put)).await {
                Ok(_) => Some(Event { key, op: Op::Write(value), invoked, returned: Some(now(start)) }),
                Err(status) if photon_client::never_sent(&status) => None,
                Err(_) => Some(Event { key, op: Op::Write(value), invoked, returned: None }),
            }
        } else if roll < 8 || !last_read.contains_key(&key) {
            match kv
                .get(request(GetRequest { namespace: "default".into(), key: key.clone().into(), region: None }))
                .await
            {
                Ok(answer) => {
                    let record = answer.into_inner().record;
                    let value = record.as_ref().map(|r| String::from_utf8_lossy(&r.value).into_owned());
                    if let Some(r) = &record {
                        last_read.insert(key.clone(), (String::from_utf8_lossy(&r.value).into_owned(), r.version));
                    }
                    Some(Event { key, op: Op::Read(value), invoked, returned: Some(now(start)) })
                }
                Err(_) => None,
            }
        } else {
            seq += 1;
            let (expected, version) = last_read[&key].clone();
            let new = format!("c{id}-{seq}");
            let cas = CompareAndSwapRequest {
                namespace: "default".into(),
                key: key.clone().into(),
                expected_version: version,
                value: new.clone().into(),
                ttl_seconds: 0,
                region: None,
            };
            match kv.compare_and_swap(request(cas)).await {
                Ok(answer) => {
                    let succeeded = answer.into_inner().succeeded;
                    Some(Event { key, op: Op::Cas { expected, new, succeeded }, invoked, returned: Some(now(start)) })
                }
                Err(status) if photon_client::never_sent(&status) => None,
                Err(_) => Some(Event { key, op: Op::Cas { expected, new, succeeded: false }, invoked, returned: None }),
            }
        };
        let failed = event.as_ref().is_none_or(|e| e.returned.is_none());
        if let Some(event) = event {
            history.lock().unwrap_or_else(|p| p.into_inner()).push(event);
        }
        if failed {
            tokio::time::sleep(BACKOFF).await;
        }
    }
}

async fn run_once(seed: u64, seconds: u64) {
    let mut env = Env::start_with_env(3, &[], &[("FLAREDB_RAFT_FAULT_INJECTION", "true")]).await;
    let start = Instant::now();
    let history = Arc::new(Mutex::new(Vec::new()));
    for key in KEYS {
        let put = PutRequest {
            namespace: "default".into(),
            key: key.into(),
            value: "init".into(),
            ttl_seconds: 0,
            region: None,
        };
        let invoked = start.elapsed().as_nanos() as u64;
        env.kv(0).put(put).await.unwrap();
        let returned = Some(start.elapsed().as_nanos() as u64);
        history.lock().unwrap().push(Event { key: key.into(), op: Op::Write("init".into()), invoked, returned });
    }
    let stores: Vec<_> = (0..3).map(|i| env.kv(i)).collect();
    let until = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..CLIENTS as u64)
        .map(|id| tokio::spawn(client(id, seed, stores.clone(), start, until, history.clone())))
        .collect();

    let mut rng = Rng(seed | 1);
    let (mut kills, mut isolations, mut campaigns) = (0, 0, 0);
    while Instant::now() + Duration::from_millis(2500) < until {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1000))).await;
        let leader = env.leader().await;
        match rng.below(3) {
            0 => {
                env.stores[leader].process.kill9();
                kills += 1;
                tokio::time::sleep(Duration::from_millis(800 + rng.below(700))).await;
                env.stores[leader].process.start();
                env.stores[leader].wait_healthy(Duration::from_secs(30)).await;
            }
            1 => {
                let victim = if rng.below(2) == 0 { leader } else { (leader + 1 + rng.below(2) as usize) % 3 };
                env.stores[victim].fault("isolate");
                isolations += 1;
                // Long enough for the majority to elect and write: a stale read would show.
                tokio::time::sleep(Duration::from_millis(2000 + rng.below(1500))).await;
                env.stores[victim].fault("heal");
            }
            _ => {
                let heir = (leader + 1 + rng.below(2) as usize) % 3;
                // Refused while the region has no leader or the leader is slow to yield: fine.
                if env.regions(heir).campaign(CampaignRequest { region_id: 1 }).await.is_ok() {
                    campaigns += 1;
                }
            }
        }
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let history = history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let completed = history.iter().filter(|e| e.returned.is_some()).count();
    eprintln!(
        "flaredb linearizability run: seed {seed}, {seconds}s, {kills} leader kills, {isolations} isolations, \
         {campaigns} campaigns, {} operations ({completed} with known outcome)",
        history.len()
    );
    assert!(kills + isolations + campaigns >= 1 && completed > 20, "the run must exercise failures and real traffic");
    if let Err(violation) = check(&history) {
        panic!("seed {seed}: {violation:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strong_namespace_stays_linearizable_through_kills_isolations_and_campaigns() {
    let runs = env("PHOTON_CHECK_RUNS", 1);
    let seconds = env("PHOTON_CHECK_SECONDS", 6);
    let base = env("PHOTON_CHECK_SEED", std::process::id() as u64);
    for run in 0..runs {
        run_once(base.wrapping_add(run * 7919), seconds).await;
    }
}
