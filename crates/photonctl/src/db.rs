//! `photonctl db`: get, put, delete and scan keys in FlareDB, through its client crate (which
//! routes to region leaders and retries across leader changes).

use std::path::PathBuf;

use anyhow::Context as _;
use flaredb_client::{Client, Config, Record, ScanOptions};
use serde_json::json;

use crate::OutputFormat;

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Print a key's value.
    Get { key: String },
    /// Set a key; prints its new version.
    Put {
        key: String,
        value: String,
        /// Remove the key after this many seconds.
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
    },
    /// Delete a key; prints whether it existed.
    Del { key: String },
    /// Print keys in [START, END) in order (END empty: to the end of the namespace).
    Scan {
        #[arg(default_value = "")]
        start: String,
        #[arg(default_value = "")]
        end: String,
        /// Most keys to print (0: all).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        reverse: bool,
    },
}

fn record_json(record: &Record) -> serde_json::Value {
    json!({
        "key": String::from_utf8_lossy(&record.key),
        "value": String::from_utf8_lossy(&record.value),
        "version": record.version,
        "expires_at_ms": record.expires_at_ms,
    })
}

pub async fn run(
    endpoint: &str,
    ca: PathBuf,
    namespace: &str,
    command: DbCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    let db = Client::connect(Config::new([endpoint]).ca(ca))
        .await
        .with_context(|| format!("cannot reach flaredb at {endpoint}"))?;
    let print = |records: &[Record]| -> anyhow::Result<()> {
        match output {
            OutputFormat::Json => {
                println!("{}", serde_json::to_string_pretty(&records.iter().map(record_json).collect::<Vec<_>>())?)
            }
            OutputFormat::Table => {
                for r in records {
                    println!("{} = {}", String::from_utf8_lossy(&r.key), String::from_utf8_lossy(&r.value));
                }
            }
        }
        Ok(())
    };
    match command {
        DbCommand::Get { key } => match db.get(namespace, key.as_bytes()).await? {
            Some(record) => print(&[record])?,
            None => anyhow::bail!("key {key:?} not found in namespace {namespace:?}"),
        },
        DbCommand::Put { key, value, ttl } => {
            let version = db.put_with_ttl(namespace, key.as_bytes(), value.as_bytes(), ttl.unwrap_or(0)).await?;
            println!("OK (version {version})");
        }
        DbCommand::Del { key } => println!("{}", db.delete(namespace, key.as_bytes()).await?),
        DbCommand::Scan { start, end, limit, reverse } => {
            let options = ScanOptions { limit, reverse, ..Default::default() };
            print(&db.scan(namespace, start.as_bytes(), end.as_bytes(), options).await?)?;
        }
    }
    Ok(())
}
