//! Three chainfire members on loopback: any member takes writes and linearizable reads, a
//! killed leader is replaced quickly with nothing acknowledged lost, and it catches up when it
//! returns; members join, are promoted and removed while clients keep writing.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::Cluster;
use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::{PutRequest, RangeRequest};
use photon_testkit::{free_port, TestServer};
use tonic::transport::Channel;

/// Writes unique keys `load/{writer}/{n}` through `targets` in turn until `stop`, recording
/// every acknowledged key; returns how many writes failed.
async fn write_load(
    writer: usize,
    targets: Vec<KvClient<Channel>>,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<BTreeSet<String>>>,
) -> usize {
    let mut failed = 0;
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("load/{writer}/{n:06}");
        let mut kv = targets[n % targets.len()].clone();
        let put = PutRequest { key: key.clone().into(), value: b"v".to_vec(), ..Default::default() };
        match tokio::time::timeout(Duration::from_secs(5), kv.put(put)).await {
            Ok(Ok(_)) => {
                acked.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
            }
            _ => {
                failed += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    failed
}

#[tokio::test]
async fn any_member_serves_writes_and_linearizable_reads() {
    let cluster = Cluster::start().await;
    let leader = cluster.leader().await;
    for member in 0..3 {
        cluster.ok(member, &["put", &format!("from/{member}"), &format!("written via {}", member + 1)]);
    }
    for member in 0..3 {
        let seen = cluster.ok(member, &["get", "from/", "--prefix", "--print-value-only"]);
        assert_eq!(seen.lines().count(), 3, "member {} reads every write linearizably: {seen}", member + 1);
    }
    let follower = (leader + 1) % 3;
    let status = cluster.ok(follower, &["endpoint", "status", "-w", "json"]);
    assert!(status.contains(&format!("\"leader\":{}", leader + 1)), "a follower names the leader: {status}");

    // Every member's client URL is listed by every member (members publish them through Raft),
    // so clients that discover endpoints through MemberList find them all.
    let urls: Vec<String> = cluster.members.iter().map(|m| m.url()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    for member in 0..3 {
        loop {
            let list = cluster.ok(member, &["member", "list", "-w", "json"]);
            let doc: serde_json::Value = serde_json::from_str(&list).unwrap();
            let mut listed: Vec<String> = doc["members"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|m| m["clientURLs"].as_array().cloned().unwrap_or_default())
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect();
            listed.sort();
            let mut expected = urls.clone();
            expected.sort();
            if listed == expected {
                break;
            }
            assert!(Instant::now() < deadline, "member {} lists client URLs {listed:?}, not {expected:?}", member + 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn killing_the_leader_loses_nothing_and_a_new_leader_serves_within_two_seconds() {
    let mut cluster = Cluster::start().await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    for i in 0..30 {
        cluster.ok(follower, &["put", &format!("acked/{i:02}"), "1"]);
    }

    cluster.members[leader].process.kill9();
    let killed_at = Instant::now();
    let survivor = (leader + 2) % 3;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (success, _) = cluster.etcdctl(survivor, &["put", "after/failover", &attempt.to_string()]);
        if success {
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(10), "no write succeeded after the leader died");
    }
    let failover = killed_at.elapsed();
    eprintln!("chainfire failover: first write accepted {failover:?} after kill -9 of the leader");
    assert!(failover < Duration::from_secs(2), "a new leader took {failover:?}");

    let keys = cluster.ok(follower, &["get", "acked/", "--prefix", "--keys-only"]);
    assert_eq!(keys.split_whitespace().count(), 30, "every acknowledged write survived: {keys}");

    cluster.members[leader].process.start();
    cluster.members[leader].wait_healthy(Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A serializable read answers from the restarted member's own state.
        let local = cluster.ok(leader, &["get", "after/failover", "--consistency=s", "--print-value-only"]);
        if !local.trim().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted member did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_listed_added_as_learners_promoted_and_removed_under_load() {
    let mut cluster = Cluster::start().await;
    let leader = cluster.leader().await;
    let removed = (0..3).find(|&i| i != leader).unwrap();
    let kept = (0..3).find(|&i| i != leader && i != removed).unwrap();

    // Clients write through the two members that stay for the whole membership dance.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let targets = vec![cluster.kv(leader), cluster.kv(kept)];
    let writers: Vec<_> =
        (0..4).map(|w| tokio::spawn(write_load(w, targets.clone(), stop.clone(), acked.clone()))).collect();
    let acked_now = || acked.lock().unwrap_or_else(|p| p.into_inner()).len();
    let mut progress = vec![("start", acked_now())];

    let list = cluster.ok(leader, &["member", "list", "-w", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&list).unwrap();
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{list}");
    assert!(members.iter().all(|m| m.get("isLearner").is_none_or(|l| l == false)), "{list}");
    cluster.ok(leader, &["put", "before/join", "1"]);

    let raft4 = format!("127.0.0.1:{}", free_port());
    let added = cluster.ok(leader, &["member", "add", "node4", &format!("--peer-urls=https://{raft4}"), "--learner"]);
    let hex = added.split_whitespace().nth(1).unwrap_or_else(|| panic!("no member id in {added}"));
    let id = u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("{hex} is not a hex member id: {added}"));

    let ca = cluster.members[0].ca().parent().unwrap().to_path_buf();
    let mut fourth =
        TestServer::with_shared_ca("chainfire-server", &ca, &["--node-id", &id.to_string(), "--raft-listen", &raft4]);
    fourth.process.env("CHAINFIRE_RAFT_BOOTSTRAP", "false").start();
    cluster.members.push(fourth);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (success, out) = cluster.etcdctl(3, &["get", "before/join", "--consistency=s", "--print-value-only"]);
        if success && out.trim() == "1" {
            break;
        }
        assert!(Instant::now() < deadline, "the learner never caught up: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    progress.push(("learner caught up", acked_now()));
    let list = cluster.ok(leader, &["member", "list"]);
    assert!(list.contains(&format!("{hex}, started")) || list.contains(hex), "{list}");
    assert!(list.lines().any(|l| l.contains(hex) && l.contains("true")), "the new member is a learner: {list}");

    assert!(cluster.ok(leader, &["member", "promote", hex]).contains("promoted"));
    let voters = cluster.ok(leader, &["member", "list"]);
    assert_eq!(voters.lines().filter(|l| l.ends_with("false")).count(), 4, "{voters}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    progress.push(("promoted", acked_now()));

    let out = cluster.ok(leader, &["member", "remove", &format!("{:x}", removed + 1)]);
    assert!(out.contains("removed"), "{out}");
    assert_eq!(cluster.ok(leader, &["member", "list"]).lines().count(), 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    progress.push(("removed", acked_now()));

    stop.store(true, Ordering::Relaxed);
    let mut failed = 0;
    for writer in writers {
        failed += writer.await.unwrap();
    }
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    eprintln!("membership under load: {} writes acknowledged, {failed} failed; progress {progress:?}", acked.len());
    for pair in progress.windows(2) {
        assert!(pair[1].1 > pair[0].1, "writes stalled between {:?} and {:?}", pair[0], pair[1]);
    }
    assert!(failed * 20 <= acked.len(), "{failed} writes failed against {} acknowledged", acked.len());
    // Every acknowledged write is there, read linearizably through the promoted member.
    let range =
        RangeRequest { key: b"load/".to_vec(), range_end: b"load0".to_vec(), keys_only: true, ..Default::default() };
    let stored = cluster.kv(3).range(range).await.unwrap().into_inner();
    let stored: BTreeSet<String> = stored.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost, e.g. {:?}", lost.len(), lost.first());

    cluster.ok(leader, &["put", "after/remove", "ok"]);
    assert_eq!(
        cluster.ok(3, &["get", "after/remove", "--print-value-only"]).trim(),
        "ok",
        "the promoted member serves"
    );

    let (success, out) = cluster.etcdctl(leader, &["member", "promote", hex]);
    assert!(!success && out.contains("can only promote a learner member"), "{out}");
    let (success, out) = cluster.etcdctl(leader, &["member", "remove", "abcdef"]);
    assert!(!success && out.contains("member not found"), "{out}");
}

#[tokio::test]
async fn a_member_far_behind_catches_up_by_snapshot() {
    // Snapshots every 50 entries and no log kept behind them: a member down for 120 writes
    // finds the entries it missed purged and must install a snapshot.
    let mut cluster = Cluster::start_with_env(&[
        ("CHAINFIRE_RAFT_SNAPSHOT_AFTER_ENTRIES", "50"),
        ("CHAINFIRE_RAFT_KEEP_LOG_ENTRIES", "0"),
    ])
    .await;
    let leader = cluster.leader().await;
    let lagging = (leader + 1) % 3;
    cluster.members[lagging].process.kill9();
    for i in 0..120 {
        cluster.ok(leader, &["put", &format!("bulk/{i:03}"), "v"]);
    }
    cluster.members[lagging].process.start();
    cluster.members[lagging].wait_healthy(Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let local = cluster.ok(lagging, &["get", "bulk/", "--prefix", "--keys-only", "--consistency=s"]);
        let count = local.split_whitespace().count();
        if count == 120 {
            break;
        }
        assert!(Instant::now() < deadline, "the lagging member has {count} of 120 keys");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = cluster.members[lagging].process.logs();
    assert!(logs.contains("begin_receiving_snapshot"), "the catch-up went through a snapshot install");
}

/// Short leases are checkpointed: a new leader carries on their countdown. One left alone
/// expires about a TTL after it was granted, not a TTL after the election (the old leader's
/// death must not give a dead holder more time); one kept alive, through whichever member
/// leads, survives the change.
#[tokio::test]
async fn short_leases_keep_their_countdown_across_a_leader_change() {
    let mut cluster = Cluster::start().await;
    let leader = cluster.leader().await;
    let lease_id = |granted: String| granted.split_whitespace().nth(1).expect("etcdctl prints the lease id").to_string();
    let granted_at = Instant::now();
    let alone = lease_id(cluster.ok(leader, &["lease", "grant", "4"]));
    let kept = lease_id(cluster.ok(leader, &["lease", "grant", "4"]));
    cluster.ok(leader, &["put", "--lease", &alone, "alone", "x"]);
    cluster.ok(leader, &["put", "--lease", &kept, "kept", "x"]);
    let keep_alive = |cluster: &Cluster, member: usize| {
        let _ = cluster.etcdctl(member, &["lease", "keep-alive", "--once", &kept]);
    };
    // A few checkpoints go by, with the kept lease renewed as a holder renews it.
    while granted_at.elapsed() < Duration::from_millis(1500) {
        keep_alive(&cluster, leader);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let killed_at = Instant::now();
    cluster.members[leader].process.kill9();
    let survivor = (leader + 1) % 3;

    let mut expired_at = None;
    while killed_at.elapsed() < Duration::from_secs(6) {
        let now_leading = cluster.leader().await;
        keep_alive(&cluster, now_leading);
        if expired_at.is_none() && cluster.ok(survivor, &["get", "alone", "--keys-only"]).trim().is_empty() {
            expired_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let expired_at = expired_at.expect("the lease left alone expired under the new leader");
    let since_grant = expired_at - granted_at;
    let since_kill = expired_at - killed_at;
    eprintln!("the lease left alone expired {since_grant:?} after its grant, {since_kill:?} after the leader died");
    assert!(since_grant >= Duration::from_secs(4), "expired before its TTL: {since_grant:?}");
    assert!(since_kill < Duration::from_millis(3800), "the new leader gave it a whole TTL again: {since_kill:?} after the kill");
    assert_eq!(
        cluster.ok(survivor, &["get", "kept", "--print-value-only"]).trim(),
        "x",
        "the lease kept alive through the change must live"
    );
}

#[tokio::test]
async fn an_isolated_member_refuses_linearizable_reads_and_writes() {
    let cluster = Cluster::start_with_env(&[("CHAINFIRE_RAFT_FAULT_INJECTION", "true")]).await;
    let leader = cluster.leader().await;
    cluster.ok(leader, &["put", "k", "before"]);

    // First a follower, then the leader itself, is cut off from the other two. The majority
    // carries on first: a cut-off leader may still answer reads under its lease until then
    // (no other leader can exist before it runs out), but never once another could.
    for victim in [(leader + 1) % 3, leader] {
        cluster.fault(victim, "isolate");
        let other = (victim + 2) % 3;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster.etcdctl(other, &["put", "majority", "ok"]).0 {
            assert!(Instant::now() < deadline, "the majority could not write");
        }
        let (ok, out) = cluster.etcdctl(victim, &["--command-timeout=3s", "get", "k"]);
        assert!(!ok, "member {} answered a linearizable read while cut off: {out}", victim + 1);
        let (ok, out) = cluster.etcdctl(victim, &["--command-timeout=3s", "put", "k", "from-minority"]);
        assert!(!ok, "member {} accepted a write while cut off: {out}", victim + 1);
        // A serializable read still answers from local state, as in etcd.
        assert!(cluster.ok(victim, &["get", "k", "--consistency=s", "--print-value-only"]).contains("before"));
        cluster.fault(victim, "heal");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cluster.etcdctl(victim, &["get", "majority", "--print-value-only"]).1.contains("ok") {
            assert!(Instant::now() < deadline, "member {} did not rejoin", victim + 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            cluster.ok(other, &["get", "k", "--print-value-only"]).trim(),
            "before",
            "the minority's write never landed"
        );
    }
}
