//! `photonctl status`: every service's `/health`, as a table or JSON.

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
    service: &'static str,
    endpoint: String,
    /// healthy, degraded, unhealthy, or down (nothing answered).
    status: String,
    http_status: Option<u16>,
    /// The `/health` document, or the error that kept us from getting one.
    health: Value,
}

pub async fn run(endpoints: &Endpoints, ca: PathBuf, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let probes = CATALOG.iter().map(|entry| {
        let url = endpoints.url(entry);
        let ca = ca.clone();
        async move {
            let answer = photon_client::probe_health(&url, Some(&ca), Duration::from_secs(3)).await;
            let (status, http_status, health) = match answer {
                Ok(a) => (a.status().unwrap_or("unknown").to_string(), Some(a.http_status), a.body),
                Err(e) => ("down".to_string(), None, Value::String(e.to_string())),
            };
            Row { service: entry.name, endpoint: url, status, http_status, health }
        }
    });
    let rows: Vec<Row> = join_all(probes).await;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Table => print_table(&rows),
    }
    let answering = rows.iter().filter(|r| r.http_status.is_some()).count();
    let all_healthy = rows.iter().all(|r| r.http_status.is_none() || r.status == "healthy");
    Ok(if answering > 0 && all_healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn details(row: &Row) -> String {
    match &row.health {
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| *k != "status")
            .map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(error) => error.clone(),
        other => other.to_string(),
    }
}

fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|r| r.endpoint.len()).max().unwrap_or(8);
    println!("{:<14} {:<10} {:<width$} DETAILS", "SERVICE", "STATUS", "ENDPOINT");
    for row in rows {
        println!("{:<14} {:<10} {:<width$} {}", row.service, row.status, row.endpoint, details(row));
    }
}
