//! `cluster-config.json` (`photon_runtime::cluster_config`) turned into chainfire configuration
//! overrides: Raft ids are 1-based positions in `initial_peers`, so bootstrap nodes (which list
//! the same peers) agree on them; a node with `bootstrap: false` joins through `leader_url`.

use std::path::Path;

use photon_runtime::cluster_config::ClusterConfig;
use photon_runtime::ConfigValue;

/// The chainfire configuration keys `config` (read from `file`) sets.
pub fn overrides(config: &ClusterConfig, file: &Path) -> Result<Vec<(String, ConfigValue)>, String> {
    let mut out = config.tls_overrides(file, "raft.peer_ca");
    out.extend(gossip_overrides(config, file));
    let own = config.own_entry(&config.initial_peers);
    if config.bootstrap {
        let (id, entry) = own.ok_or_else(|| {
            format!("node_id {:?} is not among initial_peers {:?}", config.node_id, config.initial_peers)
        })?;
        out.push(("raft.node_id".into(), ConfigValue::from(id)));
        out.push(("raft.advertise".into(), ConfigValue::from(entry.to_string())));
        out.push(("raft.initial_peers".into(), ClusterConfig::numbered(&config.initial_peers)));
        out.push(("raft.bootstrap".into(), ConfigValue::from(true)));
    } else {
        let leader =
            config.leader_url.clone().ok_or("a node with bootstrap: false needs leader_url to join through")?;
        out.push(("raft.bootstrap".into(), ConfigValue::from(false)));
        out.push(("raft.join".into(), ConfigValue::from(leader)));
        // Workers keep a local learner: every service on the node talks to its own chainfire,
        // and the control plane's quorum stays the size it was planned for.
        out.push(("raft.promote".into(), ConfigValue::from(config.is_control_plane())));
        // A node that joins later is not among initial_peers: its peers reach it at its own
        // host, on the port the cluster's peers use.
        let advertise = match own {
            Some((_, entry)) => entry.to_string(),
            // A node_id that is itself host:port names the peer address.
            None if config.node_id.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) => {
                config.node_id.clone()
            }
            None => {
                let port =
                    config.initial_peers.first().and_then(|p| p.rsplit_once(':')).map_or("2380", |(_, port)| port);
                format!("{}:{port}", config.own_host())
            }
        };
        out.push(("raft.advertise".into(), ConfigValue::from(advertise)));
    }
    Ok(out)
}

/// Node membership: this node's id, roles, the other nodes as seeds, and the gossip key (when
/// the file names one; without it there is no membership).
fn gossip_overrides(config: &ClusterConfig, file: &Path) -> Vec<(String, ConfigValue)> {
    let Some(key) = &config.gossip_key else { return Vec::new() };
    let strings = |items: Vec<String>| ConfigValue::from(items.into_iter().map(ConfigValue::from).collect::<Vec<_>>());
    let port = photon_runtime::cluster_config::GOSSIP_PORT;
    vec![
        ("gossip.node_name".into(), ConfigValue::from(config.node_id.clone())),
        ("gossip.key_file".into(), ConfigValue::from(config.resolve(file, key).display().to_string())),
        ("gossip.seeds".into(), strings(config.gossip_seeds())),
        ("gossip.roles".into(), strings(config.roles())),
        ("gossip.advertise".into(), ConfigValue::from(format!("{}:{port}", config.own_host()))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    use photon_runtime::cluster_config::ClusterConfig;

    fn parse(json: &str) -> ClusterConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn bootstrap_nodes_agree_on_ids_by_position() {
        let c = parse(
            r#"{"node_id":"node02","bootstrap":true,"initial_peers":["node01:2380","node02:2380","node03:2380"]}"#,
        );
        assert_eq!(c.own_entry(&c.initial_peers), Some((2, "node02:2380")));
        let overrides = overrides(&c, Path::new("/etc/nixos/secrets/cluster-config.json")).unwrap();
        let get = |k: &str| overrides.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("raft.node_id").and_then(|v| v.to_num()).and_then(|n| n.to_u128()), Some(2));
        assert_eq!(get("raft.advertise").and_then(|v| v.into_string()), Some("node02:2380".into()));
    }

    #[test]
    fn certificates_resolve_next_to_the_file() {
        let c = parse(
            r#"{"node_id":"127.0.0.1:1","bootstrap":true,"initial_peers":["127.0.0.1:1"],"tls":{"ca":"ca.crt","cert":"n.crt","key":"/abs/n.key"}}"#,
        );
        let overrides = overrides(&c, Path::new("/srv/cfg/cluster-config.json")).unwrap();
        let get = |k: &str| overrides.iter().find(|(key, _)| key == k).and_then(|(_, v)| v.clone().into_string());
        assert_eq!(get("tls.cert").as_deref(), Some("/srv/cfg/n.crt"));
        assert_eq!(get("tls.key").as_deref(), Some("/abs/n.key"));
        assert_eq!(get("raft.peer_ca").as_deref(), Some("/srv/cfg/ca.crt"));
    }

    #[test]
    fn mistakes_are_named() {
        let stranger = parse(r#"{"node_id":"node09","bootstrap":true,"initial_peers":["node01:2380"]}"#);
        assert!(overrides(&stranger, Path::new("c.json")).unwrap_err().contains("node09"));
        let lost = parse(r#"{"node_id":"node04","bootstrap":false,"initial_peers":["node01:2380"]}"#);
        assert!(overrides(&lost, Path::new("c.json")).unwrap_err().contains("leader_url"));
    }
}
