//! Cluster formation from cluster-config.json: three bootstrap nodes with identical
//! initial_peers form one cluster; a fourth with bootstrap: false joins through leader_url as a
//! learner and is promoted once caught up. Certificates come from the file, not the dev CA.

use std::time::{Duration, Instant};

mod common;

use common::etcdctl_ok as etcdctl;
use photon_testkit::{free_port, TestServer};
use photon_tls::DevCa;
use serde_json::json;

struct Secrets {
    dir: tempfile::TempDir,
    ca: DevCa,
    raft: Vec<String>,
}

impl Secrets {
    /// Writes node `i`'s certificate and cluster-config.json, and prepares its server.
    fn node(&self, i: usize, leader_url: Option<String>) -> TestServer {
        let names = ["127.0.0.1".to_string(), "localhost".to_string()];
        let cert = self.ca.issue(self.dir.path(), &format!("node0{}", i + 1), &names).unwrap();
        let file_name = |p: &std::path::Path| p.file_name().unwrap().to_str().unwrap().to_string();
        let mut config = json!({
            "node_id": self.raft[i],
            "bootstrap": leader_url.is_none(),
            "initial_peers": &self.raft[..3],
            "tls": {"ca": "ca.crt", "cert": file_name(&cert.cert_path), "key": file_name(&cert.key_path)},
        });
        if let Some(url) = leader_url {
            config["leader_url"] = json!(url);
            // A control-plane node that joins later (a worker would stay a learner).
            config["roles"] = json!(["control-plane"]);
        }
        let file = self.dir.path().join(format!("cluster-config-{}.json", i + 1));
        std::fs::write(&file, config.to_string()).unwrap();
        let args = ["--cluster-config", file.to_str().unwrap(), "--raft-listen", &self.raft[i]];
        TestServer::with_shared_ca("chainfire-server", self.dir.path(), &args)
    }
}

#[tokio::test]
async fn three_bootstrap_nodes_form_a_cluster_and_a_fourth_joins() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = DevCa::load_or_create(dir.path()).unwrap();
    let raft = (0..4).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let secrets = Secrets { dir, ca, raft };

    let mut nodes: Vec<TestServer> = (0..3).map(|i| secrets.node(i, None)).collect();
    for node in &mut nodes {
        node.process.start();
    }
    for node in &mut nodes {
        let health = node.wait_healthy(Duration::from_secs(30)).await;
        assert_eq!(health["cluster_size"], 3, "{health}");
    }
    etcdctl(&nodes[0], &["put", "formed", "yes"]);

    // Any member will do as leader_url: membership changes are forwarded to the leader.
    let mut joiner = secrets.node(3, Some(nodes[1].url()));
    joiner.process.start();
    nodes.push(joiner);
    let joiner = nodes.last_mut().unwrap();
    joiner.wait_healthy(Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let members = etcdctl(&nodes[0], &["member", "list"]);
        let voters = members.lines().filter(|l| l.ends_with("false")).count();
        if voters == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the joiner was not promoted: {members}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(etcdctl(&nodes[3], &["get", "formed", "--print-value-only"]).trim(), "yes");
    // The joiner remembers its id: a restart does not ask to join again.
    let members_before = etcdctl(&nodes[0], &["member", "list"]);
    nodes[3].process.kill9();
    nodes[3].process.start();
    nodes[3].wait_healthy(Duration::from_secs(30)).await;
    assert_eq!(etcdctl(&nodes[0], &["member", "list"]).lines().count(), members_before.lines().count());
}
