//! A YCSB-style driver: workloads A (50% read, 50% update), B (95% read), C (read only) and F
//! (50% read, 50% read-modify-write) over `records` keys chosen by YCSB's scrambled zipfian
//! distribution, with 1 KiB values, against FlareDB (its client crate, strong namespace), any
//! etcd v3 endpoint (chainfire, etcd; linearizable reads) or RocksDB in this process (the
//! physical limit: no network, no Raft).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::{PutRequest, RangeRequest};
use rocksdb::DB;
use serde_json::Value;
use tonic::transport::Channel;

use crate::stats::summary;
use crate::zipf::Zipf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    A,
    B,
    C,
    F,
}

impl Workload {
    /// Share of operations that read (the rest update, or read-modify-write for F).
    fn read_share(self) -> f64 {
        match self {
            Workload::A | Workload::F => 0.5,
            Workload::B => 0.95,
            Workload::C => 1.0,
        }
    }
}

/// What the driver talks to.
#[derive(Clone)]
pub enum Target {
    Flare(flaredb_client::Client),
    Etcd(Vec<KvClient<Channel>>),
    Rocks(Arc<DB>),
}

fn key(i: u64) -> Vec<u8> {
    format!("user{i:012}").into_bytes()
}

impl Target {
    pub async fn flaredb(endpoints: &[String], ca: Option<PathBuf>, batch_in_flight: usize) -> anyhow::Result<Self> {
        let mut config = flaredb_client::Config::new(endpoints.iter().cloned());
        config.ca = ca;
        config.batch_in_flight = batch_in_flight;
        Ok(Target::Flare(flaredb_client::Client::connect(config).await?))
    }

    pub fn etcd(endpoints: &[String], ca: Option<PathBuf>, conns: usize) -> anyhow::Result<Self> {
        let options = photon_client::ChannelOptions { ca, ..Default::default() };
        let mut clients = Vec::new();
        for i in 0..conns.max(1) {
            let url = &endpoints[i % endpoints.len()];
            clients.push(KvClient::new(photon_client::lazy_channel(url, &options)?));
        }
        Ok(Target::Etcd(clients))
    }

    pub fn rocksdb(path: &std::path::Path) -> anyhow::Result<Self> {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        Ok(Target::Rocks(Arc::new(DB::open(&options, path)?)))
    }

    async fn read(&self, client: usize, key: &[u8]) -> anyhow::Result<()> {
        match self {
            Target::Flare(db) => {
                db.get("default", key).await?;
            }
            Target::Etcd(clients) => {
                let mut kv = clients[client % clients.len()].clone();
                kv.range(RangeRequest { key: key.to_vec(), ..Default::default() }).await?;
            }
            Target::Rocks(db) => {
                db.get(key)?;
            }
        }
        Ok(())
    }

    async fn update(&self, client: usize, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        match self {
            Target::Flare(db) => {
                db.put("default", key, value).await?;
            }
            Target::Etcd(clients) => {
                let mut kv = clients[client % clients.len()].clone();
                kv.put(PutRequest { key: key.to_vec(), value: value.to_vec(), ..Default::default() }).await?;
            }
            Target::Rocks(db) => db.put(key, value)?,
        }
        Ok(())
    }

    /// Inserts `records` keys with `value`, `clients` at a time.
    pub async fn load(&self, records: u64, value: &[u8], clients: usize) -> anyhow::Result<()> {
        let mut tasks = Vec::new();
        for c in 0..clients.max(1) {
            let (target, value) = (self.clone(), value.to_vec());
            tasks.push(tokio::spawn(async move {
                let mut i = c as u64;
                while i < records {
                    target.update(c, &key(i), &value).await?;
                    i += clients.max(1) as u64;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    }
}

/// Runs `operations` operations of `workload` from `clients` concurrent clients; the summary
/// JSON (throughput, p50 and p99 of each operation, including both halves of an F
/// read-modify-write).
pub async fn run(
    target: &Target,
    workload: Workload,
    records: u64,
    operations: u64,
    clients: usize,
    value: &[u8],
) -> anyhow::Result<Value> {
    let zipf = Arc::new(Zipf::new(records));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let clients = clients.max(1);
    for c in 0..clients {
        let (target, zipf, value) = (target.clone(), zipf.clone(), value.to_vec());
        let share = operations / clients as u64 + u64::from((c as u64) < operations % clients as u64);
        tasks.push(tokio::spawn(async move {
            let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (c as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            let mut uniform = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64
            };
            let (mut samples, mut errors, mut first_error) = (Vec::with_capacity(share as usize), 0u64, None);
            for _ in 0..share {
                let k = key(zipf.key(uniform()));
                let reads = uniform() < workload.read_share();
                let began = Instant::now();
                let outcome = if reads {
                    target.read(c, &k).await
                } else if workload == Workload::F {
                    match target.read(c, &k).await {
                        Ok(()) => target.update(c, &k, &value).await,
                        Err(e) => Err(e),
                    }
                } else {
                    target.update(c, &k, &value).await
                };
                match outcome {
                    Ok(()) => samples.push(began.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (samples, errors, first_error)
        }));
    }
    let (mut samples, mut errors, mut first_error): (Vec<Duration>, u64, Option<String>) = (Vec::new(), 0, None);
    for task in tasks {
        let (s, e, first) = task.await?;
        samples.extend(s);
        errors += e;
        first_error = first_error.or(first);
    }
    let name = format!("{workload:?}");
    let mut report = summary(&name, &mut samples, started.elapsed(), errors);
    if let Some(error) = first_error {
        // What went wrong, so an error count in a report can be followed up.
        report["first_error"] = Value::String(error);
    }
    Ok(report)
}
