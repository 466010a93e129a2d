//! Linearizability under failures: concurrent clients put, read (linearizably) and
//! compare-and-swap two keys through random members of a three-member cluster while a nemesis
//! kills the leader (-9) and restarts it, or cuts a member (the leader or a follower) off from
//! its peers and heals it; the recorded history must have a valid linearization.
//!
//! The default run is short (one pass, a few seconds) for CI. `scripts/soak` runs many longer,
//! differently seeded passes: PHOTON_CHECK_RUNS, PHOTON_CHECK_SECONDS, PHOTON_CHECK_SEED.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Cluster;
use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::{compare, request_op, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use photon_testkit::linearizability::workload::{client_rng, timed as request, BACKOFF, CLIENTS, KEYS};
use photon_testkit::linearizability::{check, Event, Op};
use photon_testkit::seeded::{env_u64 as env, Rng};
use tonic::transport::Channel;

async fn client(
    id: u64,
    seed: u64,
    members: Vec<KvClient<Channel>>,
    start: Instant,
    until: Instant,
    history: Arc<Mutex<Vec<Event>>>,
) {
    let mut rng = client_rng(seed, id);
    let mut last_seen: Option<String> = None;
    let mut seq = 0;
    let now = |start: Instant| start.elapsed().as_nanos() as u64;
    while Instant::now() < until {
        let mut kv = members[rng.below(members.len() as u64) as usize].clone();
        let key = KEYS[rng.below(KEYS.len() as u64) as usize].to_string();
        let invoked = now(start);
        let roll = rng.below(10);
        let event = if roll < 4 {
            seq += 1;
            let value = format!("c{id}-{seq}");
            match kv
                .put(request(PutRequest { key: key.clone().into(), value: value.clone().into(), ..Default::default() }))
                .await
            {
                Ok(_) => Some(Event { key, op: Op::Write(value), invoked, returned: Some(now(start)) }),
                Err(status) if photon_client::never_sent(&status) => None,
                // A write that failed on the way may still have been applied: outcome unknown.
                Err(_) => Some(Event { key, op: Op::Write(value), invoked, returned: None }),
            }
        } else if roll < 8 {
            match kv.range(request(RangeRequest { key: key.clone().into(), ..Default::default() })).await {
                Ok(response) => {
                    let value =
                        response.into_inner().kvs.pop().map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
                    last_seen = value.clone();
                    Some(Event { key, op: Op::Read(value), invoked, returned: Some(now(start)) })
                }
                // A failed read changed nothing and told nothing.
                Err(_) => None,
            }
        } else {
            seq += 1;
            let expected = last_seen.clone().unwrap_or_default();
            let new = format!("c{id}-{seq}");
            let txn = TxnRequest {
                compare: vec![Compare {
                    key: key.clone().into(),
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Value as i32,
                    target_union: Some(compare::TargetUnion::Value(expected.clone().into())),
                    ..Default::default()
                }],
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: key.clone().into(),
                        value: new.clone().into(),
                        ..Default::default()
                    })),
                }],
                failure: vec![],
            };
            match kv.txn(request(txn)).await {
                Ok(response) => {
                    let succeeded = response.into_inner().succeeded;
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
    let mut cluster = Cluster::start_with_env(&[("CHAINFIRE_RAFT_FAULT_INJECTION", "true")]).await;
    let clients: Vec<_> = (0..cluster.members.len()).map(|i| cluster.kv(i)).collect();
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let history = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..CLIENTS as u64)
        .map(|id| tokio::spawn(client(id, seed, clients.clone(), start, until, history.clone())))
        .collect();

    // The nemesis, alternating at random: kill -9 the leader, let the others carry on, bring it
    // back; or cut off a member (the leader half of the time), let the majority carry on, heal.
    let mut rng = Rng(seed | 1);
    let (mut kills, mut isolations) = (0, 0);
    while Instant::now() + Duration::from_millis(2500) < until {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1000))).await;
        let leader = cluster.leader().await;
        if rng.below(2) == 0 {
            cluster.members[leader].process.kill9();
            kills += 1;
            tokio::time::sleep(Duration::from_millis(800 + rng.below(700))).await;
            cluster.members[leader].process.start();
            cluster.members[leader].wait_healthy(Duration::from_secs(30)).await;
        } else {
            let victim = if rng.below(2) == 0 { leader } else { (leader + 1 + rng.below(2) as usize) % 3 };
            cluster.fault(victim, "isolate");
            isolations += 1;
            // Long enough for the majority to elect and write: a stale read would show.
            tokio::time::sleep(Duration::from_millis(2000 + rng.below(1500))).await;
            cluster.fault(victim, "heal");
        }
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let history = history.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let completed = history.iter().filter(|e| e.returned.is_some()).count();
    eprintln!(
        "linearizability run: seed {seed}, {seconds}s, {kills} leader kills, {isolations} isolations, {} operations \
         ({completed} with known outcome)",
        history.len()
    );
    assert!(kills + isolations >= 1 && completed > 20, "the run must exercise failures and real traffic");
    if let Err(violation) = check(&history) {
        panic!("seed {seed}: {violation:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_through_leader_kills_and_isolations_stay_linearizable() {
    let runs = env("PHOTON_CHECK_RUNS", 1);
    let seconds = env("PHOTON_CHECK_SECONDS", 6);
    let base = env("PHOTON_CHECK_SEED", std::process::id() as u64);
    for run in 0..runs {
        run_once(base.wrapping_add(run * 7919), seconds).await;
    }
}
