//! `cluster-config.json` (`photon_runtime::cluster_config`) turned into flaredb configuration
//! overrides. Store ids are 1-based positions in `flaredb_peers`, so bootstrap nodes (which
//! list the same peers) agree on them and bootstrap the first region together. A node with
//! `bootstrap: false` joins the running cluster (placement gives it replicas); its own file
//! lists it in `flaredb_peers` after the others, which gives it its id.

use std::path::Path;

use photon_runtime::cluster_config::ClusterConfig;
use photon_runtime::ConfigValue;

/// The flaredb configuration keys `config` (read from `file`) sets.
pub fn overrides(config: &ClusterConfig, file: &Path) -> Result<Vec<(String, ConfigValue)>, String> {
    let mut out = config.tls_overrides(file, "raft.peer_ca");
    // chainfire's certificate is signed by the cluster's CA too.
    if let Some(tls) = &config.tls {
        out.push(("chainfire.ca".into(), ConfigValue::from(config.resolve(file, &tls.ca).display().to_string())));
    }
    let (id, entry) = config
        .own_entry(&config.flaredb_peers)
        .ok_or_else(|| format!("node_id {:?} is not among flaredb_peers {:?}", config.node_id, config.flaredb_peers))?;
    out.push(("raft.node_id".into(), ConfigValue::from(id)));
    out.push(("raft.advertise".into(), ConfigValue::from(entry.to_string())));
    out.push(("raft.bootstrap".into(), ConfigValue::from(config.bootstrap)));
    if config.bootstrap {
        out.push(("raft.initial_peers".into(), ClusterConfig::numbered(&config.flaredb_peers)));
    }
    // chainfire runs on every control-plane node: the local one first, then the others.
    let chainfire: Vec<ConfigValue> = config
        .leader_url
        .iter()
        .cloned()
        .chain(
            config
                .initial_peers
                .iter()
                .map(|p| format!("https://{}:2379", p.rsplit_once(':').map_or(p.as_str(), |(h, _)| h))),
        )
        .map(ConfigValue::from)
        .collect();
    if !chainfire.is_empty() {
        out.push(("chainfire.endpoints".into(), ConfigValue::from(chainfire)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ClusterConfig {
        serde_json::from_str(json).unwrap()
    }

    fn get(overrides: &[(String, ConfigValue)], key: &str) -> Option<ConfigValue> {
        overrides.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    #[test]
    fn bootstrap_stores_take_ids_by_position_and_find_chainfire() {
        let c = parse(
            r#"{"node_id":"node02","bootstrap":true,"leader_url":"https://node01:2379",
                "initial_peers":["node01:2380","node02:2380","node03:2380"],
                "flaredb_peers":["node01:2480","node02:2480","node03:2480"]}"#,
        );
        let o = overrides(&c, Path::new("/etc/nixos/secrets/cluster-config.json")).unwrap();
        assert_eq!(get(&o, "raft.node_id").and_then(|v| v.to_num()).and_then(|n| n.to_u128()), Some(2));
        assert_eq!(get(&o, "raft.advertise").and_then(|v| v.into_string()), Some("node02:2480".into()));
        let peers = get(&o, "raft.initial_peers").and_then(|v| v.into_array()).unwrap();
        assert_eq!(peers.len(), 3);
        let endpoints = get(&o, "chainfire.endpoints").and_then(|v| v.into_array()).unwrap();
        assert_eq!(endpoints[0].clone().into_string(), Some("https://node01:2379".into()));
    }

    #[test]
    fn a_joining_store_does_not_bootstrap_and_a_stranger_is_named() {
        let joiner = parse(
            r#"{"node_id":"node04","bootstrap":false,"initial_peers":["node01:2380"],
                "flaredb_peers":["node01:2480","node02:2480","node03:2480","node04:2480"]}"#,
        );
        let o = overrides(&joiner, Path::new("c.json")).unwrap();
        assert_eq!(get(&o, "raft.node_id").and_then(|v| v.to_num()).and_then(|n| n.to_u128()), Some(4));
        assert_eq!(get(&o, "raft.bootstrap").and_then(|v| v.to_bool()), Some(false));
        assert!(get(&o, "raft.initial_peers").is_none());
        let stranger = parse(r#"{"node_id":"node09","bootstrap":true,"initial_peers":[],"flaredb_peers":["a:1"]}"#);
        assert!(overrides(&stranger, Path::new("c.json")).unwrap_err().contains("node09"));
    }
}
