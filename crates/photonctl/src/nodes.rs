//! `photonctl node ls`: the cluster's nodes as chainfire's membership table has them (one
//! record per node under `/photoncloud/nodes/`, kept by the Raft leader from SWIM gossip): node,
//! roles, state (alive, suspect, dead) and since when, and each service's health.

use std::path::PathBuf;

use anyhow::Context as _;
use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::RangeRequest;
use photon_client::{channel, ChannelOptions};
use serde_json::{json, Value};

use crate::OutputFormat;

/// Where chainfire keeps the member table (its `gossip.prefix` default).
pub const NODES_PREFIX: &str = "/photoncloud/nodes/";

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// List every node: roles, state (alive/suspect/dead) and since when, services and health.
    Ls,
}

/// Every node record in chainfire at `endpoint`, in node id order.
pub async fn table(endpoint: &str, ca: Option<PathBuf>) -> anyhow::Result<Vec<Value>> {
    let options = ChannelOptions { ca, ..Default::default() };
    let channel = channel(endpoint, &options).await.with_context(|| format!("cannot reach chainfire at {endpoint}"))?;
    let mut end = NODES_PREFIX.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let request = RangeRequest { key: NODES_PREFIX.as_bytes().to_vec(), range_end: end, ..Default::default() };
    let response = KvClient::new(channel)
        .range(request)
        .await
        .map_err(|s| anyhow::anyhow!("chainfire at {endpoint} refused to list nodes: {}", s.message()))?
        .into_inner();
    response
        .kvs
        .iter()
        .map(|kv| {
            serde_json::from_slice(&kv.value)
                .with_context(|| format!("the record {} is not JSON", String::from_utf8_lossy(&kv.key)))
        })
        .collect()
}

pub async fn run(endpoint: &str, ca: PathBuf, command: NodeCommand, output: OutputFormat) -> anyhow::Result<()> {
    match command {
        NodeCommand::Ls => {
            let nodes = table(endpoint, Some(ca)).await?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&nodes)?),
                OutputFormat::Table if nodes.is_empty() => {
                    println!("no nodes recorded yet (node membership needs a gossip key: gossip.key_file)")
                }
                OutputFormat::Table => {
                    let rows: Vec<Value> = nodes.iter().map(row).collect();
                    crate::table::print_table(&rows, &["node", "roles", "state", "since", "address", "services"]);
                }
            }
            Ok(())
        }
    }
}

/// A record as a table row: services as `name:status`, the time as a date.
fn row(node: &Value) -> Value {
    let services: Vec<String> = node["services"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| format!("{}:{}", s["name"].as_str().unwrap_or("?"), s["status"].as_str().unwrap_or("?")))
                .collect()
        })
        .unwrap_or_default();
    let since =
        node["state_since"].as_str().map(|t| t.replacen('T', " ", 1).replace(".000Z", " UTC").replace('Z', " UTC"));
    json!({
        "node": node["node_id"],
        "roles": node["roles"],
        "state": node["state"],
        "since": since,
        "address": node["gossip_addr"],
        "services": services,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_as_a_row() {
        let record = json!({"node_id": "node01", "state": "alive", "state_since": "2026-12-06T07:12:00.000Z",
            "gossip_addr": "10.0.0.1:2381", "roles": ["control-plane"],
            "services": [{"name": "chainfire", "status": "healthy"}, {"name": "iam", "status": "down"}]});
        let r = row(&record);
        assert_eq!(r["since"], "2026-12-06 07:12:00 UTC");
        assert_eq!(r["services"], json!(["chainfire:healthy", "iam:down"]));
    }
}
