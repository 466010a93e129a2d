//! Node membership: chainfire runs the gossip agent (`photon-gossip`) on every node, advertises
//! the health of this node's services, and, while it is the Raft leader, keeps the member table
//! in the store under `gossip.prefix` (one JSON record per node), where every service can read
//! and watch it through the etcd API. One writer (the leader) means one view, never two nodes
//! overwriting each other's opinion.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use photon_gossip::{Gossip, Member, ServiceHealth, Timing};
use photon_raft::openraft::ServerState;
use photon_runtime::Context;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::ChainfireConfig;
use crate::mvcc::model::{Command, Put};
use crate::node::Node;

/// How often this node's services are probed and the table is compared with the store.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Starts node membership if a gossip key is configured; `None` when it is not.
pub async fn start(
    config: &ChainfireConfig,
    node: &Node,
    context: &Context,
    api_url: &str,
) -> anyhow::Result<Option<Gossip>> {
    let section = &config.gossip;
    let Some(key_file) = &section.key_file else {
        tracing::info!("gossip: no gossip.key_file, so no node membership on this node");
        return Ok(None);
    };
    if !key_file.exists() && config.server.mode == photon_runtime::config::Mode::Development {
        create_key(key_file)?;
    }
    let key =
        std::fs::read(key_file).with_context(|| format!("gossip.key_file: cannot read {}", key_file.display()))?;
    let key = key.trim_ascii().to_vec();
    anyhow::ensure!(
        key.len() >= 32,
        "gossip.key_file {} holds {} bytes; at least 32 are needed",
        key_file.display(),
        key.len()
    );
    let node_name = match &section.node_name {
        Some(name) => name.clone(),
        None => photon_runtime::host_name(),
    };
    let advertise = match &section.advertise {
        Some(addr) => Some(resolve(addr).await?),
        None if section.listen.ip().is_unspecified() => {
            let raft = config.raft.advertised();
            let host = raft.rsplit_once(':').map_or(raft.as_str(), |(h, _)| h);
            Some(resolve(&format!("{host}:{}", section.listen.port())).await?)
        }
        None => None,
    };
    let timing = Timing {
        probe_period: Duration::from_millis(section.probe_period_ms),
        probe_rtt: Duration::from_millis(section.probe_rtt_ms),
        suspect_to_down: Duration::from_millis(section.suspect_to_down_ms),
        ..Timing::default()
    };
    anyhow::ensure!(timing.probe_rtt < timing.probe_period, "gossip.probe_rtt_ms must be below gossip.probe_period_ms");
    let gossip = Gossip::start(
        photon_gossip::Config {
            node: node_name,
            listen: section.listen,
            advertise,
            seeds: section.seeds.clone(),
            key,
            roles: section.roles.clone(),
            api_url: api_url.to_string(),
            timing,
        },
        context.shutdown.clone(),
        &context.tasks,
    )
    .await
    .with_context(|| format!("cannot bind the gossip port {}", section.listen))?;
    let services = parse_services(&section.services)?;
    let ca = config.raft.peer_ca.clone().or_else(|| context.tls.trust.clone());
    context.tasks.spawn(advertise_health(node.clone(), gossip.clone(), services, ca, context.shutdown.clone()));
    context.tasks.spawn(keep_table(node.clone(), gossip.clone(), section.prefix.clone(), context.shutdown.clone()));
    Ok(Some(gossip))
}

/// Development only: a new random gossip key (hex, mode 0600), as the development CA is made.
fn create_key(path: &std::path::Path) -> anyhow::Result<()> {
    use ring::rand::SecureRandom as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness for a gossip key"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the gossip key {}", path.display()))?;
    file.write_all(format!("{hex}\n").as_bytes())?;
    tracing::warn!(key_file = %path.display(), "gossip: created a development gossip key; other nodes must use the same file");
    Ok(())
}

async fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("gossip: cannot resolve {addr}"))?
        .next()
        .with_context(|| format!("gossip: {addr} resolves to no address"))
}

/// `name=url` entries of `gossip.services`.
fn parse_services(entries: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    entries
        .iter()
        .map(|entry| {
            let (name, url) = entry
                .split_once('=')
                .with_context(|| format!("gossip.services: {entry:?} is not name=https://host:port"))?;
            Ok((name.to_string(), url.to_string()))
        })
        .collect()
}

/// Probes this node's services every few seconds and advertises what they answer.
async fn advertise_health(
    node: Node,
    gossip: Gossip,
    services: Vec<(String, String)>,
    ca: Option<std::path::PathBuf>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let own = node.health().status;
        let mut health = vec![ServiceHealth { name: "chainfire".into(), status: status_name(own) }];
        for (name, url) in &services {
            let status = match photon_client::probe_health(url, ca.as_deref(), Duration::from_secs(1)).await {
                Ok(answer) => answer.status().unwrap_or("unknown").to_string(),
                Err(_) => "down".to_string(),
            };
            health.push(ServiceHealth { name: name.clone(), status });
        }
        gossip.set_services(health).await;
    }
}

fn status_name(status: photon_runtime::HealthStatus) -> String {
    serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The record of `member` under the prefix, as the leader `observer` sees it.
pub fn record(member: &Member, observer: &str) -> Vec<u8> {
    let info = member.info.as_ref();
    let services: Vec<_> = info
        .map(|i| i.services.iter().map(|s| json!({"name": s.name, "status": s.status})).collect())
        .unwrap_or_default();
    json!({
        "node_id": member.node,
        "state": member.state.as_str(),
        "state_since": photon_runtime::time::iso8601(member.since_ms),
        "gossip_addr": member.addr.to_string(),
        "api_url": info.map(|i| i.api_url.clone()),
        "roles": info.map(|i| i.roles.clone()).unwrap_or_default(),
        "services": services,
        "observed_by": observer,
    })
    .to_string()
    .into_bytes()
}

/// While this member leads, writes every member whose record changed.
async fn keep_table(node: Node, gossip: Gossip, prefix: String, shutdown: CancellationToken) {
    let mut members = gossip.members();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    // What this leader wrote (or found already stored), so an unchanged table costs nothing.
    let mut written: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = members.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
        }
        if node.raft.metrics().borrow().state != ServerState::Leader {
            written.clear();
            continue;
        }
        let table = members.borrow_and_update().clone();
        let observer = table.iter().find(|m| m.is_self).map(|m| m.node.clone()).unwrap_or_default();
        for member in &table {
            let key = format!("{prefix}{}", member.node).into_bytes();
            let value = record(member, &observer);
            if written.get(&key) == Some(&value) {
                continue;
            }
            let stored = node.read(|r| Ok(r.latest(&key)?)).ok().flatten().map(|kv| kv.value);
            if stored.as_ref() != Some(&value) {
                let put = Put {
                    key: key.clone(),
                    value: value.clone(),
                    lease: 0,
                    prev_kv: false,
                    ignore_value: false,
                    ignore_lease: false,
                };
                if let Err(e) = node.apply(Command::Put(put)).await {
                    tracing::debug!(error = %e, node = %member.node, "gossip: could not record the member; retrying");
                    continue;
                }
                tracing::info!(node = %member.node, state = member.state.as_str(), "membership: recorded");
            }
            written.insert(key, value);
        }
    }
}
