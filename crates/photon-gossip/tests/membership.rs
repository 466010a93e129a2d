//! Three real agents on loopback UDP, each on a runtime of its own thread, so a test can freeze
//! one whole node (its only thread blocked, as a stopped process): a node frozen for less than the
//! suspicion time is at most suspected, never declared dead; one frozen for longer is declared
//! dead within the bound and is alive again once it thaws; a node with another key never joins.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use photon_gossip::{Config, Gossip, MemberState, Timing};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Node {
    gossip: Gossip,
    runtime: tokio::runtime::Handle,
    shutdown: CancellationToken,
}

impl Node {
    /// Blocks the node's only thread for `d`: nothing it does happens meanwhile.
    fn freeze(&self, d: Duration) {
        self.runtime.spawn(async move { std::thread::sleep(d) });
    }

    fn state_of(&self, node: &str) -> Option<MemberState> {
        self.gossip.members().borrow().iter().find(|m| m.node == node).map(|m| m.state)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free UDP port")
}

fn start(name: &str, listen: SocketAddr, seeds: Vec<String>, key: &[u8]) -> Node {
    let config = Config {
        node: name.into(),
        listen,
        advertise: None,
        seeds,
        key: key.to_vec(),
        roles: vec!["worker".into()],
        api_url: "https://127.0.0.1:2379".into(),
        timing: Timing::default(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let tasks = TaskTracker::new();
        let gossip = runtime.block_on(Gossip::start(config, stop.clone(), &tasks)).expect("gossip starts");
        tx.send((gossip, runtime.handle().clone())).expect("send");
        runtime.block_on(async move {
            stop.cancelled().await;
            tasks.close();
            let _ = tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await;
        });
    });
    let (gossip, runtime) = rx.recv().expect("the agent started");
    Node { gossip, runtime, shutdown }
}

fn cluster(key_of: impl Fn(usize) -> Vec<u8>) -> Vec<Node> {
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_udp()).collect();
    (0..3)
        .map(|i| {
            let seeds = addrs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| a.to_string()).collect();
            start(&format!("n{i}"), addrs[i], seeds, &key_of(i))
        })
        .collect()
}

fn wait_for(what: &str, timeout: Duration, check: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

#[test]
fn a_briefly_frozen_node_is_not_declared_dead_and_a_long_frozen_one_is_and_comes_back() {
    let nodes = cluster(|_| KEY.to_vec());
    wait_for("three alive members", Duration::from_secs(10), || {
        (0..3).all(|i| nodes[0].state_of(&format!("n{i}")) == Some(MemberState::Alive))
    });
    // Frozen for less than a probe round plus the suspicion: it answers in time.
    nodes[2].freeze(Duration::from_millis(600));
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        assert_ne!(nodes[0].state_of("n2"), Some(MemberState::Dead), "a node that answered was declared dead");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Frozen for long: declared dead within the bound, alive again once it thaws.
    nodes[2].freeze(Duration::from_secs(4));
    let took =
        wait_for("n2 declared dead", Duration::from_secs(4), || nodes[0].state_of("n2") == Some(MemberState::Dead));
    assert!(took < Duration::from_secs(3), "declared dead after {took:?}");
    wait_for("n2 alive after thawing", Duration::from_secs(10), || nodes[0].state_of("n2") == Some(MemberState::Alive));
}

#[test]
fn a_node_with_another_key_never_joins() {
    let nodes = cluster(|i| if i == 2 { b"another key, another cluster.....".to_vec() } else { KEY.to_vec() });
    wait_for("n0 and n1 see each other", Duration::from_secs(10), || {
        nodes[0].state_of("n1") == Some(MemberState::Alive) && nodes[1].state_of("n0") == Some(MemberState::Alive)
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(nodes[0].state_of("n2"), None, "a node without the key got in");
    assert_eq!(nodes[2].state_of("n0"), None, "the stranger learned the cluster");
}
