//! The workloads: put, range and watch fan-out, each spread over `conns` connections and run
//! by `clients` concurrent tasks until `total` requests are done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::watch_client::WatchClient;
use photon_api::etcd::etcdserverpb::{watch_request, PutRequest, RangeRequest, WatchCreateRequest, WatchRequest};
use photon_client::{channel, ChannelOptions};
use serde_json::Value;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::{Settings, Workload};
use etcd_bench::stats::summary;

async fn connections(settings: &Settings) -> anyhow::Result<Vec<Channel>> {
    let options = ChannelOptions { ca: settings.cacert.clone(), ..Default::default() };
    let mut out = Vec::new();
    for i in 0..settings.conns {
        let endpoint = &settings.endpoints[i % settings.endpoints.len()];
        out.push(channel(endpoint, &options).await.with_context(|| format!("cannot connect to {endpoint}"))?);
    }
    Ok(out)
}

/// xorshift per client: random keys without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

pub async fn run(settings: &Settings, workload: &Workload) -> anyhow::Result<Value> {
    let conns = connections(settings).await?;
    match workload {
        Workload::Put => {
            requests(settings, &conns, "put", |mut kv, key, value| {
                Box::pin(async move { kv.put(PutRequest { key, value, ..Default::default() }).await.map(|_| ()) })
            })
            .await
        }
        Workload::Range { consistency } => {
            let serializable = consistency == "s";
            let mut kv = KvClient::new(conns[0].clone());
            kv.put(PutRequest {
                key: b"bench-range".to_vec(),
                value: vec![b'v'; settings.val_size],
                ..Default::default()
            })
            .await?;
            let name = if serializable { "range-serializable" } else { "range-linearizable" };
            requests(settings, &conns, name, move |mut kv, _, _| {
                Box::pin(async move {
                    kv.range(RangeRequest { key: b"bench-range".to_vec(), serializable, ..Default::default() })
                        .await
                        .map(|_| ())
                })
            })
            .await
        }
        Workload::Watch { watchers } => watch(settings, &conns, *watchers).await,
        Workload::DevCert { .. } => unreachable_workload(),
    }
}

fn unreachable_workload() -> anyhow::Result<Value> {
    anyhow::bail!("dev-cert is not a load workload")
}

type Call = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), tonic::Status>> + Send>>;

async fn requests<F>(settings: &Settings, conns: &[Channel], name: &str, call: F) -> anyhow::Result<Value>
where
    F: Fn(KvClient<Channel>, Vec<u8>, Vec<u8>) -> Call + Send + Sync + Clone + 'static,
{
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..settings.clients {
        let kv = KvClient::new(conns[c % conns.len()].clone());
        let (issued, errors, call) = (issued.clone(), errors.clone(), call.clone());
        let (total, value) = (settings.total, vec![b'v'; settings.val_size]);
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (c as u64 + 1);
        let key_settings = (settings.sequential_keys, settings.key_size, settings.total);
        tasks.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return samples;
                }
                let id = if key_settings.0 { n } else { next(&mut state) % key_settings.2.max(1) };
                let key = format!("{id:0width$}", width = key_settings.1).into_bytes();
                let begun = Instant::now();
                match call(kv.clone(), key, value.clone()).await {
                    Ok(()) => samples.push(begun.elapsed()),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = tasks.join_next().await {
        samples.extend(done?);
    }
    Ok(summary(name, &mut samples, start.elapsed(), errors.load(Ordering::Relaxed)))
}

/// `watchers` streams watch one key; `total` puts follow; each delivered event's latency is
/// measured from just before its put was sent.
async fn watch(settings: &Settings, conns: &[Channel], watchers: usize) -> anyhow::Result<Value> {
    let key = b"bench-watch".to_vec();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Instant>();
    let mut streams = Vec::new();
    for w in 0..watchers {
        let (tx, rx) = mpsc::channel(1);
        let create = WatchCreateRequest { key: key.clone(), ..Default::default() };
        tx.send(WatchRequest { request_union: Some(watch_request::RequestUnion::CreateRequest(create)) }).await?;
        let mut responses =
            WatchClient::new(conns[w % conns.len()].clone()).watch(ReceiverStream::new(rx)).await?.into_inner();
        let created = responses.message().await?.context("watch stream closed")?;
        anyhow::ensure!(created.created, "watch not created");
        let events_tx = events_tx.clone();
        streams.push(tokio::spawn(async move {
            let _keep_open = tx;
            while let Ok(Some(response)) = responses.message().await {
                for _ in response.events {
                    let _ = events_tx.send(Instant::now());
                }
            }
        }));
    }
    drop(events_tx);
    let mut kv = KvClient::new(conns[0].clone());
    let start = Instant::now();
    let mut sent_at = Vec::with_capacity(settings.total as usize);
    let mut samples = Vec::new();
    let expected = settings.total as usize * watchers;
    for i in 0..settings.total {
        sent_at.push(Instant::now());
        kv.put(PutRequest { key: key.clone(), value: i.to_string().into_bytes(), ..Default::default() }).await?;
    }
    // Events arrive in put order on every stream; attribute each to its put by counting.
    let mut per_put = vec![0usize; sent_at.len()];
    let mut cursor = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while samples.len() < expected && Instant::now() < deadline {
        let Ok(Some(received)) = tokio::time::timeout(Duration::from_secs(10), events_rx.recv()).await else { break };
        while cursor < per_put.len() && per_put[cursor] >= watchers {
            cursor += 1;
        }
        let Some(sent) = sent_at.get(cursor) else { break };
        per_put[cursor] += 1;
        samples.push(received.saturating_duration_since(*sent));
    }
    for stream in streams {
        stream.abort();
    }
    let missing = (expected - samples.len()) as u64;
    Ok(summary("watch-fanout", &mut samples, start.elapsed(), missing))
}
