//! `etcd-bench`: load for any etcd v3 endpoint, with the knobs of etcd's own benchmark tool
//! (`--conns`, `--clients`, `--key-size`, `--val-size`, `--total`, `--sequential-keys`).
//! Prints one JSON line per run: operations, seconds, throughput, p50 and p99 latency.

mod workloads;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "etcd-bench", version)]
struct Cli {
    /// Endpoints, comma-separated (requests are spread over them).
    #[arg(long, value_delimiter = ',', default_value = "https://127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// CA certificate to trust for https endpoints.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// gRPC connections (shared by the clients).
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    #[arg(long, default_value_t = 8)]
    val_size: usize,
    /// Requests in all.
    #[arg(long, default_value_t = 10_000)]
    total: u64,
    /// Keys 0, 1, 2, ... instead of random.
    #[arg(long)]
    sequential_keys: bool,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Workload {
    /// Put keys (a key space of `--total` keys).
    Put,
    /// Range one key repeatedly.
    Range {
        /// l: linearizable, s: serializable.
        #[arg(long, default_value = "l")]
        consistency: String,
    },
    /// Many watchers on one key; `--total` puts; measures delivery latency per event.
    Watch {
        #[arg(long, default_value_t = 100)]
        watchers: usize,
    },
    /// Issue a server certificate from a development CA (for running etcd with TLS too).
    DevCert {
        #[arg(long)]
        ca_dir: PathBuf,
        #[arg(long)]
        out_dir: PathBuf,
        #[arg(long)]
        name: String,
    },
}

pub struct Settings {
    pub endpoints: Vec<String>,
    pub cacert: Option<PathBuf>,
    pub conns: usize,
    pub clients: usize,
    pub key_size: usize,
    pub val_size: usize,
    pub total: u64,
    pub sequential_keys: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Workload::DevCert { ca_dir, out_dir, name } = &cli.workload {
        let (ca, _) = photon_tls::DevCa::load_or_create(ca_dir)?;
        let issued = ca.issue(out_dir, name, &photon_tls::local_names())?;
        println!("{} {}", issued.cert_path.display(), issued.key_path.display());
        return Ok(());
    }
    let settings = Settings {
        endpoints: cli.endpoints,
        cacert: cli.cacert,
        conns: cli.conns.max(1),
        clients: cli.clients.max(1),
        key_size: cli.key_size,
        val_size: cli.val_size,
        total: cli.total,
        sequential_keys: cli.sequential_keys,
    };
    let report = workloads::run(&settings, &cli.workload).await?;
    println!("{}", report);
    Ok(())
}
