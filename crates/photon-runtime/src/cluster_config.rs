//! `cluster-config.json`, the file first-boot automation leaves on every node (PLATFORM.md):
//!
//! ```json
//! {"node_id": "node01", "bootstrap": true, "leader_url": "https://node01:2379",
//!  "initial_peers": ["node01:2380", "node02:2380", "node03:2380"],
//!  "flaredb_peers": ["node01:2480", "node02:2480", "node03:2480"],
//!  "tls": {"ca": "ca.crt", "cert": "node01.crt", "key": "node01.key"},
//!  "gossip_key": "gossip.key", "roles": ["control-plane"]}
//! ```
//!
//! The shared part: reading it, refusing a wrong or half-written one with the field named
//! (before any service starts), finding this node in a peer list (ids are 1-based positions, so
//! nodes listing the same peers agree on them; a node's entry is the one whose host, or whole
//! `host:port`, is `node_id`), its roles, and file paths (relative to the file). Each service maps
//! it to its own configuration keys.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ConfigValue;

/// The gossip port (chainfire's node membership), on every node.
pub const GOSSIP_PORT: u16 = 2381;
/// chainfire's API port, where a joining node's `leader_url` points.
pub const CHAINFIRE_PORT: u16 = 2379;
/// flaredb's API port on every control-plane node.
pub const FLAREDB_PORT: u16 = 2479;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// File holding the cluster's gossip key (at least 32 bytes; any content, e.g. hex).
    #[serde(default)]
    pub gossip_key: Option<PathBuf>,
    /// `control-plane` (votes in chainfire and flaredb, runs IAM) and/or `worker`. Default: a
    /// node listed in `initial_peers` is control plane, any other a worker.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub const ROLE_CONTROL_PLANE: &str = "control-plane";
pub const ROLE_WORKER: &str = "worker";
/// Shortest gossip key accepted (HMAC-SHA256 keys shorter than the hash weaken it).
const MIN_GOSSIP_KEY_BYTES: usize = 32;

fn host_of(entry: &str) -> &str {
    entry.rsplit_once(':').map_or(entry, |(host, _)| host)
}

/// `host:port` with a non-empty host and a port 1-65535; the problem otherwise.
fn check_host_port(entry: &str) -> Result<(), String> {
    let (host, port) = entry.rsplit_once(':').ok_or_else(|| format!("{entry:?} is not host:port"))?;
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        return Err(format!("{entry:?} has no valid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("{entry:?} has no valid port (1-65535)")),
    }
}

fn check_peers(field: &str, peers: &[String]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (i, entry) in peers.iter().enumerate() {
        check_host_port(entry).map_err(|e| format!("{field}[{i}]: {e}"))?;
        if !seen.insert(entry.as_str()) {
            return Err(format!("{field}[{i}]: {entry:?} is listed twice (node ids must be unique)"));
        }
    }
    Ok(())
}

impl ClusterConfig {
    /// Reads and validates the file: every problem names the field at fault.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read cluster config {}: {e}", path.display()))?;
        let config = Self::parse(&text).map_err(|e| format!("cluster config {}: {e}", path.display()))?;
        config.check_files(path).map_err(|e| format!("cluster config {}: {e}", path.display()))?;
        Ok(config)
    }

    /// Parses and validates `text` (files it names are not looked at).
    pub fn parse(text: &str) -> Result<Self, String> {
        // The path to the value at fault (`tls.key`, `initial_peers[2]`) leads the message.
        let mut de = serde_json::Deserializer::from_str(text);
        let config: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_eof() {
                format!("the JSON ends early at line {} column {} (half-written file?)", inner.line(), inner.column())
            } else if path == "." {
                format!("invalid: {inner}")
            } else {
                format!("{path}: {inner}")
            }
        })?;
        de.end().map_err(|e| format!("invalid: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// The rules no service could start under, each error naming its field.
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.node_id;
        if id.is_empty() || id.len() > 253 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c)) {
            return Err(format!(
                "node_id: {id:?} must be 1-253 characters of letters, digits, '-', '.', '_' or ':' (a host name)"
            ));
        }
        if self.initial_peers.is_empty() && self.flaredb_peers.is_empty() {
            return Err("initial_peers: must list the chainfire peer address of every bootstrap node".into());
        }
        check_peers("initial_peers", &self.initial_peers)?;
        check_peers("flaredb_peers", &self.flaredb_peers)?;
        if let Some(url) = &self.leader_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .ok_or_else(|| format!("leader_url: {url:?} must start with https://"))?;
            check_host_port(rest.trim_end_matches('/')).map_err(|e| format!("leader_url: {e}"))?;
        }
        let listed = self.own_entry(&self.initial_peers).or_else(|| self.own_entry(&self.flaredb_peers));
        if self.bootstrap && listed.is_none() {
            return Err(format!(
                "initial_peers: a bootstrap node must be listed; node_id {id:?} is not among {:?}",
                self.initial_peers
            ));
        }
        if !self.bootstrap && self.leader_url.is_none() {
            return Err("leader_url: a node with bootstrap: false joins through leader_url, which is missing".into());
        }
        if let Some(roles) = &self.roles {
            if roles.is_empty() {
                return Err("roles: must name at least one role (control-plane, worker)".into());
            }
            if let Some(bad) = roles.iter().find(|r| *r != ROLE_CONTROL_PLANE && *r != ROLE_WORKER) {
                return Err(format!("roles: unknown role {bad:?} (control-plane or worker)"));
            }
        }
        if self.is_control_plane() && !self.flaredb_peers.is_empty() && self.own_entry(&self.flaredb_peers).is_none() {
            return Err(format!("flaredb_peers: a control-plane node must be listed; node_id {id:?} is not"));
        }
        Ok(())
    }

    /// Checks that the files the config names exist. (Only that: a service under systemd may not
    /// read the private ones itself, it gets them as credentials.)
    fn check_files(&self, file: &Path) -> Result<(), String> {
        let mut named: Vec<(&str, &PathBuf)> = Vec::new();
        if let Some(tls) = &self.tls {
            named.extend([("tls.ca", &tls.ca), ("tls.cert", &tls.cert), ("tls.key", &tls.key)]);
        }
        if let Some(key) = &self.gossip_key {
            named.push(("gossip_key", key));
        }
        for (field, path) in named {
            let resolved = self.resolve(file, path);
            if !resolved.is_file() {
                return Err(format!("{field}: {} does not exist", resolved.display()));
            }
        }
        Ok(())
    }

    /// `path` as named in the file at `file`: relative paths are next to it.
    pub fn resolve(&self, file: &Path, path: &Path) -> PathBuf {
        file.parent().unwrap_or(Path::new(".")).join(path)
    }

    /// The gossip key's bytes (surrounding white space trimmed), if the config names one.
    pub fn read_gossip_key(&self, file: &Path) -> Result<Option<Vec<u8>>, String> {
        let Some(path) = &self.gossip_key else { return Ok(None) };
        let resolved = self.resolve(file, path);
        let bytes =
            std::fs::read(&resolved).map_err(|e| format!("gossip_key: cannot read {}: {e}", resolved.display()))?;
        let key = bytes.trim_ascii().to_vec();
        if key.len() < MIN_GOSSIP_KEY_BYTES {
            return Err(format!(
                "gossip_key: {} holds {} bytes; at least {MIN_GOSSIP_KEY_BYTES} are needed",
                resolved.display(),
                key.len()
            ));
        }
        Ok(Some(key))
    }

    /// This node's entry in `peers` and its 1-based position.
    pub fn own_entry<'a>(&self, peers: &'a [String]) -> Option<(u64, &'a str)> {
        peers
            .iter()
            .enumerate()
            .find(|(_, entry)| **entry == self.node_id || host_of(entry) == self.node_id)
            .map(|(i, entry)| (i as u64 + 1, entry.as_str()))
    }

    /// This node's roles: as listed, else control plane when it is one of `initial_peers` or
    /// joins as a voter, else worker.
    pub fn roles(&self) -> Vec<String> {
        match &self.roles {
            Some(roles) => roles.clone(),
            None if self.own_entry(&self.initial_peers).is_some() || self.own_entry(&self.flaredb_peers).is_some() => {
                vec![ROLE_CONTROL_PLANE.into()]
            }
            None => vec![ROLE_WORKER.into()],
        }
    }

    pub fn is_control_plane(&self) -> bool {
        self.roles().iter().any(|r| r == ROLE_CONTROL_PLANE)
    }

    /// The host this node is reached at: its host in `initial_peers` or `flaredb_peers`, else
    /// `node_id` itself.
    pub fn own_host(&self) -> String {
        self.own_entry(&self.initial_peers)
            .or_else(|| self.own_entry(&self.flaredb_peers))
            .map_or_else(|| self.node_id.clone(), |(_, entry)| host_of(entry).to_string())
    }

    /// `host:2381` of every other node this config knows (the bootstrap nodes and the leader),
    /// for the gossip agent to announce to.
    pub fn gossip_seeds(&self) -> Vec<String> {
        let leader = self.leader_url.as_deref().and_then(|url| {
            let rest = url.split_once("://").map_or(url, |(_, r)| r).trim_end_matches('/');
            Some(host_of(rest).to_string())
        });
        let own = self.own_host();
        let mut hosts: Vec<String> = Vec::new();
        for host in self.initial_peers.iter().map(|p| host_of(p).to_string()).chain(leader) {
            if host != own && !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        hosts.into_iter().map(|h| format!("{h}:{GOSSIP_PORT}")).collect()
    }

    /// `https://host:<port>` of every host in `peers`, this node's first (services talk to
    /// their local instance while it answers).
    pub fn api_urls(&self, peers: &[String], port: u16) -> Vec<String> {
        let own = self.own_host();
        let mut hosts: Vec<&str> = peers.iter().map(|p| host_of(p)).collect();
        hosts.sort_by_key(|h| *h != own);
        hosts.dedup();
        hosts.iter().map(|h| format!("https://{h}:{port}")).collect()
    }

    /// `peers` as `id=host:port` entries (ids by position).
    pub fn numbered(peers: &[String]) -> ConfigValue {
        ConfigValue::from(
            peers.iter().enumerate().map(|(i, p)| ConfigValue::from(format!("{}={p}", i + 1))).collect::<Vec<_>>(),
        )
    }

    /// `tls.cert`, `tls.key` and `<peer_ca_key>` overrides, paths resolved next to `file`.
    pub fn tls_overrides(&self, file: &Path, peer_ca_key: &str) -> Vec<(String, ConfigValue)> {
        let resolve = |p: &Path| ConfigValue::from(self.resolve(file, p).display().to_string());
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"node_id":"node02","bootstrap":true,"leader_url":"https://node01:2379",
        "initial_peers":["node01:2380","node02:2380","node03:2380"],
        "flaredb_peers":["node01:2480","node02:2480","node03:2480"]}"#;

    fn with(field: &str, value: serde_json::Value) -> String {
        let mut json: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        json[field] = value;
        json.to_string()
    }

    fn without(field: &str) -> String {
        let mut json: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        json.as_object_mut().unwrap().remove(field);
        json.to_string()
    }

    fn error(text: &str) -> String {
        ClusterConfig::parse(text).expect_err(text)
    }

    #[test]
    fn a_good_config_parses_with_roles_and_seeds() {
        let c = ClusterConfig::parse(GOOD).unwrap();
        assert_eq!(c.roles(), vec!["control-plane"]);
        assert_eq!(c.gossip_seeds(), vec!["node01:2381", "node03:2381"]);
        assert_eq!(
            c.api_urls(&c.flaredb_peers, FLAREDB_PORT),
            vec!["https://node02:2479", "https://node01:2479", "https://node03:2479"]
        );
    }

    #[test]
    fn every_field_is_checked_and_named() {
        use serde_json::json;
        let cases = [
            (without("node_id"), "node_id"),
            (with("node_id", json!("")), "node_id"),
            (with("node_id", json!("no de")), "node_id"),
            (with("node_id", json!(7)), "node_id"),
            (without("bootstrap"), "bootstrap"),
            (with("bootstrap", json!("yes")), "bootstrap"),
            (without("initial_peers"), "initial_peers"),
            (with("initial_peers", json!([])).replace("node02:2480", "node09:2480"), "initial_peers"),
            (with("initial_peers", json!(["node02"])), "initial_peers"),
            (with("initial_peers", json!(["node02:http"])), "initial_peers"),
            (with("initial_peers", json!(["node02:0"])), "initial_peers"),
            (with("initial_peers", json!(["node01:2380", "node02:2380", "node01:2380"])), "initial_peers"),
            (with("initial_peers", json!(["node01:2380"])).replace("node02:2480", "node09:2480"), "initial_peers"),
            (with("flaredb_peers", json!(["node01:2480", "node02"])), "flaredb_peers"),
            (with("flaredb_peers", json!(["node01:2480"])), "flaredb_peers"),
            (with("leader_url", json!("node01:2379")), "leader_url"),
            (with("leader_url", json!("https://node01")), "leader_url"),
            (with("tls", json!({"ca": "ca.crt", "cert": "n.crt"})), "key"),
            (with("roles", json!(["gpu"])), "roles"),
            (with("roles", json!([])), "roles"),
            (with("colour", json!("blue")), "colour"),
        ];
        for (text, field) in cases {
            let e = error(&text);
            assert!(e.contains(field), "{text}: error {e:?} does not name {field}");
        }
        let mut joiner: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        joiner["bootstrap"] = json!(false);
        joiner.as_object_mut().unwrap().remove("leader_url");
        assert!(error(&joiner.to_string()).contains("leader_url"));
    }

    #[test]
    fn a_half_written_file_is_called_that() {
        let e = error(&GOOD[..GOOD.len() / 2]);
        assert!(e.contains("ends early"), "{e}");
    }

    #[test]
    fn a_worker_joins_through_the_leader_and_gossips_with_everyone() {
        let c = ClusterConfig::parse(
            r#"{"node_id":"10.0.0.9","bootstrap":false,"leader_url":"https://10.0.0.1:2379",
                "initial_peers":["10.0.0.1:2380","10.0.0.2:2380"]}"#,
        )
        .unwrap();
        assert_eq!(c.roles(), vec!["worker"]);
        assert!(!c.is_control_plane());
        assert_eq!(c.gossip_seeds(), vec!["10.0.0.1:2381", "10.0.0.2:2381"]);
    }

    #[test]
    fn files_must_exist_and_the_gossip_key_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cluster-config.json");
        std::fs::write(&file, with("tls", serde_json::json!({"ca": "ca.crt", "cert": "n.crt", "key": "n.key"})))
            .unwrap();
        let e = ClusterConfig::read(&file).unwrap_err();
        assert!(e.contains("tls.ca") && e.contains("does not exist"), "{e}");
        std::fs::write(&file, with("gossip_key", serde_json::json!("gossip.key"))).unwrap();
        assert!(ClusterConfig::read(&file).unwrap_err().contains("gossip_key"));
        std::fs::write(dir.path().join("gossip.key"), "short\n").unwrap();
        let c = ClusterConfig::read(&file).unwrap();
        assert!(c.read_gossip_key(&file).unwrap_err().contains("gossip_key"));
        std::fs::write(dir.path().join("gossip.key"), format!("{}\n", "ab".repeat(32))).unwrap();
        let c = ClusterConfig::read(&file).unwrap();
        assert_eq!(c.read_gossip_key(&file).unwrap().unwrap().len(), 64);
    }
}
