//! A chainfire and FlareDB stores as real processes on loopback, for FlareDB's tests.

#![allow(dead_code)] // Each test binary uses a different part.

use std::time::Duration;

use photon_api::flaredb::v1::kv_client::KvClient;
use photon_api::flaredb::v1::regions_client::RegionsClient;
use photon_testkit::{free_port, TestServer};
use tonic::transport::Channel;

pub struct Env {
    pub ca: tempfile::TempDir,
    pub chainfire: TestServer,
    pub stores: Vec<TestServer>,
}

impl Env {
    /// A one-member chainfire and `n` stores bootstrapping the first region together, each
    /// started with `args`; waits until every store is healthy.
    pub async fn start(n: usize, args: &[&str]) -> Self {
        Self::start_with_env(n, args, &[]).await
    }

    /// Like [`Env::start`], with `env` set for every store.
    pub async fn start_with_env(n: usize, args: &[&str], env: &[(&str, &str)]) -> Self {
        let ca = tempfile::tempdir().unwrap();
        let chainfire_raft = format!("127.0.0.1:{}", free_port());
        let mut chainfire =
            TestServer::with_shared_ca("chainfire-server", ca.path(), &["--raft-listen", &chainfire_raft]);
        chainfire.process.start();
        chainfire.wait_healthy(Duration::from_secs(30)).await;
        let raft: Vec<String> = (0..n).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let peers = raft.iter().enumerate().map(|(i, a)| format!("{}={a}", i + 1)).collect::<Vec<_>>().join(",");
        let mut stores = Vec::new();
        for (i, raft_addr) in raft.iter().enumerate() {
            let id = (i + 1).to_string();
            let mut all = vec!["--node-id", &id, "--raft-listen", raft_addr, "--initial-peers", &peers];
            let url = chainfire.url();
            all.extend_from_slice(&["--chainfire", &url]);
            all.extend_from_slice(args);
            let mut store = TestServer::with_shared_ca("flaredb-server", ca.path(), &all);
            for (k, v) in env {
                store.process.env(k, v);
            }
            store.process.start();
            stores.push(store);
        }
        for store in &mut stores {
            store.wait_healthy(Duration::from_secs(30)).await;
        }
        Self { ca, chainfire, stores }
    }

    /// Starts one more store that joins the running cluster (no regions until placement gives
    /// it replicas), with `args`; returns its index.
    pub async fn join(&mut self, args: &[&str]) -> usize {
        let id = (self.stores.len() + 1).to_string();
        let raft = format!("127.0.0.1:{}", free_port());
        let url = self.chainfire.url();
        let mut all = vec!["--node-id", &id, "--raft-listen", &raft, "--join", "--chainfire", &url];
        all.extend_from_slice(args);
        let mut store = TestServer::with_shared_ca("flaredb-server", self.ca.path(), &all);
        store.process.start();
        store.wait_healthy(Duration::from_secs(30)).await;
        self.stores.push(store);
        self.stores.len() - 1
    }

    /// A gRPC client of store `i` (connects on first use).
    pub fn kv(&self, i: usize) -> KvClient<Channel> {
        let store = &self.stores[i];
        let options = photon_client::ChannelOptions { ca: Some(store.ca()), ..Default::default() };
        KvClient::new(photon_client::lazy_channel(&store.url(), &options).unwrap())
    }

    /// A Regions client of store `i` (connects on first use).
    pub fn regions(&self, i: usize) -> RegionsClient<Channel> {
        let store = &self.stores[i];
        let options = photon_client::ChannelOptions { ca: Some(store.ca()), ..Default::default() };
        RegionsClient::new(photon_client::lazy_channel(&store.url(), &options).unwrap())
    }

    /// Index of the store leading region 1.
    pub async fn leader(&self) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            for (i, store) in self.stores.iter().enumerate() {
                if let Ok(answer) = store.health().await {
                    if answer.body["raft"] == "leader" {
                        return i;
                    }
                }
            }
            assert!(std::time::Instant::now() < deadline, "no region leader");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// curl against `server`: HTTP status and body.
pub fn curl(server: &TestServer, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    server.curl(method, path, body, &[])
}
