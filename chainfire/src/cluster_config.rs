//! `cluster-config.json`, the file first-boot automation leaves on every node, turned into
//! chainfire configuration overrides:
//!
//! ```json
//! {"node_id": "node01", "bootstrap": true, "leader_url": "https://node01:2379",
//!  "initial_peers": ["node01:2380", "node02:2380", "node03:2380"],
//!  "tls": {"ca": "ca.crt", "cert": "node01.crt", "key": "node01.key"}}
//! ```
//!
//! Raft ids are 1-based positions in `initial_peers`, so bootstrap nodes (which list the same
//! peers) agree on them. A node finds its own entry by `node_id`: the entry's host, or the
//! whole `host:port`. A node with `bootstrap: false` joins through `leader_url` instead.
//! Relative certificate paths are relative to the file.

use std::path::{Path, PathBuf};

use photon_runtime::ConfigValue;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct ClusterConfig {
    pub node_id: String,
    pub bootstrap: bool,
    #[serde(default)]
    pub leader_url: Option<String>,
    pub initial_peers: Vec<String>,
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

    /// This node's entry in `initial_peers` and its 1-based position.
    pub fn own_entry(&self) -> Option<(u64, &str)> {
        self.initial_peers
            .iter()
            .enumerate()
            .find(|(_, entry)| *entry == &self.node_id || host_of(entry) == self.node_id)
            .map(|(i, entry)| (i as u64 + 1, entry.as_str()))
    }

    /// The configuration keys this file sets, as `(key path, value)` overrides.
    pub fn overrides(&self, file: &Path) -> Result<Vec<(String, ConfigValue)>, String> {
        let base = file.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| ConfigValue::from(base.join(p).display().to_string());
        let mut out: Vec<(String, ConfigValue)> = Vec::new();
        if let Some(tls) = &self.tls {
            out.push(("tls.cert".into(), resolve(&tls.cert)));
            out.push(("tls.key".into(), resolve(&tls.key)));
            out.push(("raft.peer_ca".into(), resolve(&tls.ca)));
        }
        if self.bootstrap {
            let (id, entry) = self.own_entry().ok_or_else(|| {
                format!("node_id {:?} is not among initial_peers {:?}", self.node_id, self.initial_peers)
            })?;
            let peers: Vec<ConfigValue> = self
                .initial_peers
                .iter()
                .enumerate()
                .map(|(i, p)| ConfigValue::from(format!("{}={p}", i + 1)))
                .collect();
            out.push(("raft.node_id".into(), ConfigValue::from(id)));
            out.push(("raft.advertise".into(), ConfigValue::from(entry.to_string())));
            out.push(("raft.initial_peers".into(), ConfigValue::from(peers)));
            out.push(("raft.bootstrap".into(), ConfigValue::from(true)));
        } else {
            let leader =
                self.leader_url.clone().ok_or("a node with bootstrap: false needs leader_url to join through")?;
            out.push(("raft.bootstrap".into(), ConfigValue::from(false)));
            out.push(("raft.join".into(), ConfigValue::from(leader)));
            if let Some((_, entry)) = self.own_entry() {
                out.push(("raft.advertise".into(), ConfigValue::from(entry.to_string())));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ClusterConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn bootstrap_nodes_agree_on_ids_by_position() {
        let c = parse(
            r#"{"node_id":"node02","bootstrap":true,"initial_peers":["node01:2380","node02:2380","node03:2380"]}"#,
        );
        assert_eq!(c.own_entry(), Some((2, "node02:2380")));
        let overrides = c.overrides(Path::new("/etc/nixos/secrets/cluster-config.json")).unwrap();
        let get = |k: &str| overrides.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("raft.node_id").and_then(|v| v.to_num()).and_then(|n| n.to_u128()), Some(2));
        assert_eq!(get("raft.advertise").and_then(|v| v.into_string()), Some("node02:2380".into()));
    }

    #[test]
    fn certificates_resolve_next_to_the_file() {
        let c = parse(
            r#"{"node_id":"127.0.0.1:1","bootstrap":true,"initial_peers":["127.0.0.1:1"],"tls":{"ca":"ca.crt","cert":"n.crt","key":"/abs/n.key"}}"#,
        );
        let overrides = c.overrides(Path::new("/srv/cfg/cluster-config.json")).unwrap();
        let get = |k: &str| overrides.iter().find(|(key, _)| key == k).and_then(|(_, v)| v.clone().into_string());
        assert_eq!(get("tls.cert").as_deref(), Some("/srv/cfg/n.crt"));
        assert_eq!(get("tls.key").as_deref(), Some("/abs/n.key"));
        assert_eq!(get("raft.peer_ca").as_deref(), Some("/srv/cfg/ca.crt"));
    }

    #[test]
    fn mistakes_are_named() {
        let stranger = parse(r#"{"node_id":"node09","bootstrap":true,"initial_peers":["node01:2380"]}"#);
        assert!(stranger.overrides(Path::new("c.json")).unwrap_err().contains("node09"));
        let lost = parse(r#"{"node_id":"node04","bootstrap":false,"initial_peers":["node01:2380"]}"#);
        assert!(lost.overrides(Path::new("c.json")).unwrap_err().contains("leader_url"));
    }
}
