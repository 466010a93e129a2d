//! `cluster-config.json`, the file first-boot automation leaves on every node (PLATFORM.md):
//!
//! ```json
//! {"node_id": "node01", "bootstrap": true, "leader_url": "https://node01:2379",
//!  "initial_peers": ["node01:2380", "node02:2380", "node03:2380"],
//!  "flaredb_peers": ["node01:2480", "node02:2480", "node03:2480"],
//!  "tls": {"ca": "ca.crt", "cert": "node01.crt", "key": "node01.key"}}
//! ```
//!
//! The shared part: reading it, finding this node in a peer list (ids are 1-based positions,
//! so nodes listing the same peers agree on them; a node's entry is the one whose host, or
//! whole `host:port`, is `node_id`), and certificate paths (relative to the file). Each
//! service maps it to its own configuration keys.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ConfigValue;

#[derive(Debug, Deserialize)]
pub struct ClusterConfig {
    pub node_id: String,
    pub bootstrap: bool,
    #[serde(default)]
    pub leader_url: Option<String>,
    pub initial_peers: Vec<String>,
    #[serde(default)]
    pub flaredb_peers: Vec<String>,
    #[serde(default)]
    pub tls: Option<ClusterTls>,
}

#[derive(Debug, Deserialize)]
pub struct ClusterTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn host_of(entry: &str) -> &str {
    entry.rsplit_once(':').map_or(entry, |(host, _)| host)
}

impl ClusterConfig {
    pub fn read(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read cluster config {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("cluster config {} is invalid: {e}", path.display()))
    }

    /// This node's entry in `peers` and its 1-based position.
    pub fn own_entry<'a>(&self, peers: &'a [String]) -> Option<(u64, &'a str)> {
        peers
            .iter()
            .enumerate()
            .find(|(_, entry)| **entry == self.node_id || host_of(entry) == self.node_id)
            .map(|(i, entry)| (i as u64 + 1, entry.as_str()))
    }

    /// `peers` as `id=host:port` entries (ids by position).
    pub fn numbered(peers: &[String]) -> ConfigValue {
        ConfigValue::from(
            peers.iter().enumerate().map(|(i, p)| ConfigValue::from(format!("{}={p}", i + 1))).collect::<Vec<_>>(),
        )
    }

    /// `tls.cert`, `tls.key` and `<peer_ca_key>` overrides, paths resolved next to `file`.
    pub fn tls_overrides(&self, file: &Path, peer_ca_key: &str) -> Vec<(String, ConfigValue)> {
        let base = file.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| ConfigValue::from(base.join(p).display().to_string());
        match &self.tls {
            Some(tls) => vec![
                ("tls.cert".into(), resolve(&tls.cert)),
                ("tls.key".into(), resolve(&tls.key)),
                (peer_ca_key.into(), resolve(&tls.ca)),
            ],
            None => Vec::new(),
        }
    }
}
