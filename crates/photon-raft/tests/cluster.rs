//! Three Raft nodes in one process over real sockets with mutual TLS: replication, leader
//! failover under isolation, catching up by snapshot, and restarting from the data dir.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{read, KvApp, KvRequest, CF_KV};
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use photon_raft::fault::FaultInjector;
use photon_raft::network::{serve, PeerNetwork, PeerTls, Router};
use photon_raft::{Batch, NodeId, Storage, TypeConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

type KvRaft = Raft<TypeConfig<KvApp>>;

struct Node {
    id: NodeId,
    addr: String,
    dir: PathBuf,
    raft: KvRaft,
    storage: Storage,
    fault: FaultInjector,
    shutdown: CancellationToken,
    server: JoinHandle<Result<(), photon_raft::RaftError>>,
}

fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "photon-raft-test".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(50),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Default::default()
    };
    Arc::new(config.validate().expect("valid raft config"))
}

fn peer_tls(root: &Path, id: NodeId) -> PeerTls {
    let (ca, _) = photon_tls::DevCa::load_or_create(&root.join("ca")).unwrap();
    let issued = ca
        .issue_or_reuse(&root.join("certs"), &format!("node{id}"), &["127.0.0.1".into(), "localhost".into()])
        .unwrap();
    PeerTls { ca: ca.cert_path(), cert: issued.cert_path, key: issued.key_path }
}

async fn start(root: &Path, id: NodeId, listener: TcpListener) -> Node {
    let addr = listener.local_addr().unwrap().to_string();
    let dir = root.join(format!("node{id}"));
    let tls = peer_tls(root, id);
    let storage = Storage::open(&dir, &[CF_KV]).unwrap();
    let (log, sm) = storage.group(0, KvApp).unwrap();
    let fault = FaultInjector::default();
    let network = PeerNetwork::<KvApp>::new(0, id, Some(tls.clone()), fault.clone());
    let raft = Raft::new(id, config(), network, log, sm).await.unwrap();
    let router = Router::new(fault.clone());
    router.add(0, raft.clone());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { serve(listener, router, Some(&tls), shutdown).await }
    });
    Node { id, addr, dir, raft, storage, fault, shutdown, server }
}

impl Node {
    async fn stop(self) -> (NodeId, String) {
        let _ = self.raft.shutdown().await;
        self.shutdown.cancel();
        let _ = self.server.await;
        drop(self.storage);
        (self.id, self.addr)
    }

    fn get(&self, key: &str) -> Option<String> {
        read(self.storage.db(), key)
    }

    fn applied(&self) -> u64 {
        self.raft.metrics().borrow().last_applied.map(|l| l.index).unwrap_or(0)
    }

    fn is_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.current_leader == Some(self.id) && m.state.is_leader()
    }
}

async fn cluster(root: &Path) -> Vec<Node> {
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(start(root, id, TcpListener::bind("127.0.0.1:0").await.unwrap()).await);
    }
    let members: BTreeMap<NodeId, BasicNode> =
        nodes.iter().map(|n| (n.id, BasicNode { addr: n.addr.clone() })).collect();
    nodes[0].raft.initialize(members).await.unwrap();
    nodes
}

async fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Index of the leader among `candidates` (indexes into `nodes`).
async fn leader(nodes: &[Node], candidates: &[usize], timeout: Duration) -> usize {
    wait_for("a leader", timeout, || candidates.iter().copied().find(|&i| nodes[i].is_leader())).await
}

/// Writes through `raft` and returns the log index the write was committed at.
async fn set(raft: &KvRaft, key: &str, value: &str) -> Result<u64, String> {
    let request = KvRequest::Set { key: key.into(), value: value.into() };
    match tokio::time::timeout(Duration::from_secs(2), raft.client_write(Batch(vec![request]))).await {
        Ok(Ok(response)) => Ok(response.log_id.index),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

/// Waits until every node in `which` has applied log index `index`. (The index comes from the
/// write itself: openraft publishes metrics asynchronously, so a leader's `last_applied` metric
/// can lag a write it has already confirmed.)
async fn converge(nodes: &[Node], which: &[usize], index: u64) {
    wait_for(&format!("replicas to apply index {index}"), Duration::from_secs(10), || {
        which.iter().all(|&i| nodes[i].applied() >= index).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicates_fails_over_when_the_leader_is_isolated_and_heals() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(root.path()).await;
    let first = leader(&nodes, &[0, 1, 2], Duration::from_secs(10)).await;
    let mut last = 0;
    for i in 0..10 {
        last = set(&nodes[first].raft, &format!("k{i}"), &format!("v{i}")).await.unwrap();
    }
    converge(&nodes, &[0, 1, 2], last).await;
    for node in &nodes {
        assert_eq!(node.get("k9").as_deref(), Some("v9"), "node {} has every write", node.id);
    }

    // Cut the leader off: the other two elect a new leader and keep accepting writes.
    nodes[first].fault.isolate();
    let cut_at = Instant::now();
    let rest: Vec<usize> = (0..3).filter(|&i| i != first).collect();
    let second = leader(&nodes, &rest, Duration::from_secs(5)).await;
    let after = set(&nodes[second].raft, "after", "failover").await.unwrap();
    let failover = cut_at.elapsed();
    assert!(failover < Duration::from_secs(3), "new leader took {failover:?}");
    // The isolated minority cannot commit.
    assert!(set(&nodes[first].raft, "minority", "write").await.is_err(), "an isolated node must not commit");
    assert!(nodes[first].get("minority").is_none());

    nodes[first].fault.heal();
    converge(&nodes, &[0, 1, 2], after).await;
    assert_eq!(nodes[first].get("after").as_deref(), Some("failover"), "the old leader caught up");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_far_behind_catches_up_by_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let nodes = cluster(root.path()).await;
    let first = leader(&nodes, &[0, 1, 2], Duration::from_secs(10)).await;
    let lagging = (first + 1) % 3;
    nodes[lagging].fault.isolate();
    let mut last = 0;
    for i in 0..200 {
        last = set(&nodes[first].raft, &format!("key{i:03}"), &format!("value{i}")).await.unwrap();
    }
    // The leader has snapshotted and purged its log, so only a snapshot can bring the
    // lagging node up to date.
    wait_for("the leader to purge its log", Duration::from_secs(10), || {
        let m = nodes[first].raft.metrics().borrow().clone();
        m.purged.is_some_and(|p| p.index > 100).then_some(())
    })
    .await;
    nodes[lagging].fault.heal();
    converge(&nodes, &[0, 1, 2], last).await;
    assert_eq!(nodes[lagging].get("key199").as_deref(), Some("value199"));
    assert_eq!(nodes[lagging].get("key000").as_deref(), Some("value0"));
    let snapshot = nodes[lagging].raft.metrics().borrow().snapshot;
    assert!(snapshot.is_some_and(|s| s.index > 100), "the lagging node installed a snapshot: {snapshot:?}");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_recovers_from_its_data_dir_and_catches_up() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = cluster(root.path()).await;
    let first = leader(&nodes, &[0, 1, 2], Duration::from_secs(10)).await;
    let mut last = 0;
    for i in 0..20 {
        last = set(&nodes[first].raft, &format!("before{i}"), "x").await.unwrap();
    }
    converge(&nodes, &[0, 1, 2], last).await;
    let victim = (first + 1) % 3;
    let (id, addr) = nodes.remove(victim).stop().await;
    let leader_now = nodes.iter().position(|n| n.is_leader()).unwrap_or(0);
    for i in 0..20 {
        last = set(&nodes[leader_now].raft, &format!("while_down{i}"), "y").await.unwrap();
    }
    let restarted = start(root.path(), id, TcpListener::bind(&addr).await.unwrap()).await;
    assert_eq!(restarted.get("before19").as_deref(), Some("x"), "applied state survives a restart");
    assert!(restarted.dir.join("rocksdb").is_dir());
    nodes.insert(victim, restarted);
    converge(&nodes, &[0, 1, 2], last).await;
    assert_eq!(nodes[victim].get("while_down19").as_deref(), Some("y"), "caught up after restart");
    for node in nodes {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_add_a_learner_promote_it_and_remove_a_voter() {
    let root = tempfile::tempdir().unwrap();
    let mut nodes = cluster(root.path()).await;
    let first = leader(&nodes, &[0, 1, 2], Duration::from_secs(10)).await;
    let mut last = 0;
    for i in 0..30 {
        last = set(&nodes[first].raft, &format!("m{i}"), "z").await.unwrap();
    }
    // A fourth node joins as a learner: it receives the data but does not vote.
    let fourth = start(root.path(), 4, TcpListener::bind("127.0.0.1:0").await.unwrap()).await;
    let leader_raft = nodes[first].raft.clone();
    leader_raft.add_learner(4, BasicNode { addr: fourth.addr.clone() }, true).await.unwrap();
    nodes.push(fourth);
    converge(&nodes, &[0, 1, 2, 3], last).await;
    assert_eq!(nodes[3].get("m29").as_deref(), Some("z"), "the learner has the data");
    let voters = |n: &Node| n.raft.metrics().borrow().membership_config.membership().voter_ids().collect::<Vec<_>>();
    assert!(!voters(&nodes[first]).contains(&4));

    // Promote it, then remove one of the original voters (not the leader).
    leader_raft.change_membership([1, 2, 3, 4], false).await.unwrap();
    assert!(voters(&nodes[first]).contains(&4));
    let removed = nodes.iter().find(|n| n.id != nodes[first].id && n.id != 4).map(|n| n.id).unwrap();
    let remaining: Vec<NodeId> = [1, 2, 3, 4].into_iter().filter(|id| *id != removed).collect();
    leader_raft.change_membership(remaining.clone(), false).await.unwrap();
    assert_eq!(voters(&nodes[first]), remaining);
    // Writes keep committing with the new configuration.
    let last = set(&leader_raft, "after-membership", "ok").await.unwrap();
    let keep: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].id != removed).collect();
    converge(&nodes, &keep, last).await;
    assert_eq!(nodes[3].get("after-membership").as_deref(), Some("ok"));
    for node in nodes {
        node.stop().await;
    }
}
