//! A three-member chainfire cluster of real processes on loopback, for the multi-node tests.

#![allow(dead_code)] // Each test binary uses a different part.

use std::process::Command;
use std::time::{Duration, Instant};

use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_testkit::{free_port, TestServer};
use tonic::transport::Channel;

/// Runs etcdctl (API v3) against `server`: whether it succeeded, and stdout then stderr.
pub fn etcdctl(server: &TestServer, args: &[&str]) -> (bool, String) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", server.url()))
        .arg(format!("--cacert={}", server.ca().display()))
        .args(args)
        .output()
        .expect("etcdctl must be installed (scripts/setup installs etcd-client)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Like [`etcdctl`], asserting success.
pub fn etcdctl_ok(server: &TestServer, args: &[&str]) -> String {
    let (success, out) = etcdctl(server, args);
    assert!(success, "etcdctl {args:?}: {out}");
    out
}

/// A one-member chainfire, healthy, with `env` set.
pub async fn single(env: &[(&str, &str)]) -> TestServer {
    let raft = format!("127.0.0.1:{}", free_port());
    let mut server = TestServer::new("chainfire-server", &["--raft-listen", &raft]);
    for (k, v) in env {
        server.process.env(k, v);
    }
    server.process.start();
    server.wait_healthy(Duration::from_secs(30)).await;
    server
}

pub struct Cluster {
    _ca: tempfile::TempDir,
    pub members: Vec<TestServer>,
}

impl Cluster {
    pub async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    /// Three members, each started with `env` set.
    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        let ca = tempfile::tempdir().unwrap();
        let raft: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let peers = raft.iter().enumerate().map(|(i, addr)| format!("{}={addr}", i + 1)).collect::<Vec<_>>().join(",");
        let mut members: Vec<TestServer> = (0..3)
            .map(|i| {
                let id = (i + 1).to_string();
                TestServer::with_shared_ca(
                    "chainfire-server",
                    ca.path(),
                    &["--node-id", &id, "--raft-listen", &raft[i], "--initial-peers", &peers],
                )
            })
            .collect();
        for member in &mut members {
            for (k, v) in env {
                member.process.env(k, v);
            }
            member.process.start();
        }
        for member in &mut members {
            let health = member.wait_healthy(Duration::from_secs(30)).await;
            assert_eq!(health["cluster_size"], 3, "{health}");
        }
        Self { _ca: ca, members }
    }

    /// An etcd KV gRPC client for `member` (connects on first use).
    pub fn kv(&self, member: usize) -> KvClient<Channel> {
        let member = &self.members[member];
        let options = photon_client::ChannelOptions { ca: Some(member.ca()), ..Default::default() };
        KvClient::new(photon_client::lazy_channel(&member.url(), &options).expect("a channel to the member"))
    }

    pub fn etcdctl(&self, member: usize, args: &[&str]) -> (bool, String) {
        let mut all = vec!["--command-timeout=5s"];
        all.extend_from_slice(args);
        etcdctl(&self.members[member], &all)
    }

    pub fn ok(&self, member: usize, args: &[&str]) -> String {
        let (success, out) = self.etcdctl(member, args);
        assert!(success, "etcdctl on member {} {args:?}: {out}", member + 1);
        out
    }

    /// Applies a fault to `member` through its `/debug/fault/{action}` endpoint ("isolate" cuts
    /// it off from both peers, "heal" reconnects it). Needs `CHAINFIRE_RAFT_FAULT_INJECTION`.
    pub fn fault(&self, member: usize, action: &str) {
        self.members[member].fault(action);
    }

    pub async fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for (i, member) in self.members.iter().enumerate() {
                if let Ok(answer) = member.health().await {
                    if answer.body["raft"] == "leader" {
                        return i;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
