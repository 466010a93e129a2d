//! `ycsb-bench`: YCSB-style workloads (A, B, C, F; zipfian keys; 1 KiB records) against
//! FlareDB, an etcd v3 endpoint (chainfire or etcd) or RocksDB in-process. Loads the records,
//! then prints one JSON line per workload: throughput, p50 and p99 latency.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use etcd_bench::ycsb::{self, Target, Workload};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Flaredb,
    Etcd,
    Rocksdb,
}

#[derive(Debug, Parser)]
#[command(name = "ycsb-bench", version)]
struct Cli {
    /// What to drive.
    #[arg(long, value_enum)]
    target: Kind,
    /// Endpoints, comma-separated (flaredb and etcd targets).
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// CA certificate to trust for https endpoints.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Directory for the in-process RocksDB (rocksdb target).
    #[arg(long)]
    path: Option<PathBuf>,
    /// Keys in the data set.
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Operations per workload.
    #[arg(long, default_value_t = 20_000)]
    operations: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// flaredb target: batches of concurrent gets or puts per region in flight at once (the
    /// client's `batch_in_flight`; 0: every call goes alone).
    #[arg(long, default_value_t = flaredb_client::Config::new([""]).batch_in_flight)]
    flaredb_batch_in_flight: usize,
    /// Record size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Workloads to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "a,b,c,f")]
    workloads: Vec<Workload>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let target = match cli.target {
        Kind::Flaredb => Target::flaredb(&cli.endpoints, cli.cacert.clone(), cli.flaredb_batch_in_flight).await?,
        Kind::Etcd => Target::etcd(&cli.endpoints, cli.cacert.clone(), 10)?,
        Kind::Rocksdb => {
            let path = cli.path.clone().ok_or_else(|| anyhow::anyhow!("--path is required for the rocksdb target"))?;
            Target::rocksdb(&path)?
        }
    };
    let value: Vec<u8> = (0..cli.value_size).map(|i| b'a' + (i % 26) as u8).collect();
    target.load(cli.records, &value, cli.clients).await?;
    for workload in cli.workloads {
        let report = ycsb::run(&target, workload, cli.records, cli.operations, cli.clients, &value).await?;
        println!("{report}");
    }
    Ok(())
}
