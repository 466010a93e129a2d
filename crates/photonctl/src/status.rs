//! `photonctl status`: every service's `/health` on this node (a privileged port at `up`'s port,
//! then at the real one: `endpoints.rs`), then every other node's services as the cluster's
//! membership table reports them (gossiped health), as a table or JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;
use serde_json::Value;

use crate::catalog::CATALOG;
use crate::endpoints::Endpoints;
use crate::OutputFormat;

#[derive(Debug, Serialize)]
struct Row {
    /// The node: this one's name (`local` without node membership) for the probes, else the
    /// node id from the membership table.
    node: String,
    service: String,
    endpoint: String,
    /// healthy, degraded, unhealthy, or down (nothing answered).
    status: String,
    http_status: Option<u16>,
    /// The `/health` document, or the error that kept us from getting one.
    health: Value,
}

pub async fn run(
    endpoints: &Endpoints,
    chainfire: &str,
    ca: PathBuf,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let probes = CATALOG.iter().map(|entry| {
        let ca = ca.clone();
        async move {
            // A service on a privileged port is found at `up`'s port or at its real one.
            let (url, answer) = endpoints.probe_health(entry, &ca, Duration::from_secs(3)).await;
            let (status, http_status, health) = match answer {
                Ok(a) => (a.status().unwrap_or("unknown").to_string(), Some(a.http_status), a.body),
                Err(e) => ("down".to_string(), None, Value::String(e)),
            };
            Row { node: "local".into(), service: entry.name.into(), endpoint: url, status, http_status, health }
        }
    });
    let mut rows: Vec<Row> = join_all(probes).await;
    // This node's name in the membership, as its chainfire reports it: its rows are the probes.
    let local =
        rows.iter().find(|r| r.service == "chainfire").and_then(|r| r.health["node"].as_str().map(str::to_string));
    if let Some(name) = &local {
        for row in &mut rows {
            row.node = name.clone();
        }
    }
    let answering = rows.iter().filter(|r| r.http_status.is_some()).count();
    let all_healthy = rows.iter().all(|r| r.http_status.is_none() || r.status == "healthy");
    // The other nodes, if chainfire answers and keeps a membership table.
    let nodes = crate::nodes::table(chainfire, Some(ca.clone())).await.unwrap_or_default();
    let dead: Vec<String> = nodes
        .iter()
        .filter(|n| n["state"] != "alive")
        .filter_map(|n| n["node_id"].as_str().map(str::to_string))
        .collect();
    for node in nodes.iter().filter(|n| local.is_none() || n["node_id"].as_str() != local.as_deref()) {
        let name = node["node_id"].as_str().unwrap_or("?").to_string();
        for service in node["services"].as_array().into_iter().flatten() {
            let status = if node["state"] == "dead" {
                "unknown (node dead)".into()
            } else {
                service["status"].as_str().unwrap_or("?").to_string()
            };
            rows.push(Row {
                node: name.clone(),
                service: service["name"].as_str().unwrap_or("?").to_string(),
                endpoint: node["api_url"].as_str().unwrap_or_default().to_string(),
                status,
                http_status: None,
                health: serde_json::json!({"node_state": node["state"], "since": node["state_since"]}),
            });
        }
    }
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Table => print_table(&rows),
    }
    if !dead.is_empty() && output == OutputFormat::Table {
        println!("\nnot alive: {} (photonctl node ls)", dead.join(", "));
    }
    Ok(if answering > 0 && all_healthy && dead.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.endpoint.len()).max().unwrap_or(8);
    let node_width = rows.iter().map(|r| r.node.len()).max().unwrap_or(4).max(4);
    println!("{:<node_width$} {:<14} {:<10} {:<width$} DETAILS", "NODE", "SERVICE", "STATUS", "ENDPOINT");
    for row in rows {
        println!(
            "{:<node_width$} {:<14} {:<10} {:<width$} {}",
            row.node,
            row.service,
            row.status,
            row.endpoint,
            crate::table::health_fields(&row.health)
        );
    }
}
