//! FlareDB's link to chainfire, where the region map lives: the start-up check (FlareDB
//! Requires chainfire), a health probe, and writes of the store and region entries.
//!
//! Layout under `chainfire.prefix` (default `/flaredb/`):
//! - `stores/<id>` → `{"id","api_url","peer_addr"}`, written by each store at start;
//! - `regions/<id>` → `{"id","start_key","end_key","epoch","peers","leader"}` (keys in hex),
//!   written by the region's leader whenever one of those changes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::{compare, request_op, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};
use photon_client::ChannelOptions;
use tonic::transport::Channel;

use crate::config::ChainfireSection;

/// How often the health probe asks chainfire.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct Chainfire {
    clients: Vec<(String, KvClient<Channel>)>,
    prefix: String,
    connected: Arc<AtomicBool>,
}

impl Chainfire {
    /// Connects to one of `config.endpoints`, retrying until `connect_timeout_ms`; the error
    /// names every endpoint and the last failure.
    pub async fn connect(config: &ChainfireSection, ca: Option<std::path::PathBuf>) -> anyhow::Result<Self> {
        if config.endpoints.is_empty() {
            anyhow::bail!("chainfire.endpoints is empty: flaredb requires chainfire");
        }
        let options = ChannelOptions { ca, connect_timeout: Some(CALL_TIMEOUT), ..Default::default() };
        let mut clients = Vec::new();
        for url in &config.endpoints {
            let channel = photon_client::lazy_channel(url, &options)
                .map_err(|e| anyhow::anyhow!("chainfire endpoint {url}: {e}"))?;
            clients.push((url.clone(), KvClient::new(channel)));
        }
        let link = Self { clients, prefix: config.prefix.clone(), connected: Arc::new(AtomicBool::new(false)) };
        let deadline = Instant::now() + Duration::from_millis(config.connect_timeout_ms);
        loop {
            match link.probe().await {
                Ok(url) => {
                    tracing::info!(chainfire = %url, "connected to chainfire");
                    return Ok(link);
                }
                Err(last) if Instant::now() >= deadline => anyhow::bail!(
                    "chainfire is unreachable at {} after {} ms (last error: {last}); flaredb requires chainfire: \
                     start it first or fix chainfire.endpoints",
                    config.endpoints.join(", "),
                    config.connect_timeout_ms
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Whether the last probe reached chainfire.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Probes chainfire every few seconds until `shutdown`, logging when the link changes.
    pub fn watch_health(&self, shutdown: tokio_util::sync::CancellationToken, tasks: &tokio_util::task::TaskTracker) {
        let link = self.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(PROBE_EVERY) => {}
                }
                let was = link.connected();
                match link.probe().await {
                    Ok(_) if !was => tracing::info!("chainfire is reachable again"),
                    Err(e) if was => {
                        tracing::warn!(error = %e, "lost chainfire: serving known regions, region map updates wait")
                    }
                    _ => {}
                }
            }
        });
    }

    /// One read through the endpoints in turn; the URL that answered.
    async fn probe(&self) -> Result<String, String> {
        let key = format!("{}stores/", self.prefix).into_bytes();
        let request = RangeRequest { key, count_only: true, serializable: true, ..Default::default() };
        let mut last = String::new();
        for (url, client) in &self.clients {
            let mut client = client.clone();
            match tokio::time::timeout(CALL_TIMEOUT, client.range(request.clone())).await {
                Ok(Ok(_)) => {
                    self.connected.store(true, Ordering::Relaxed);
                    return Ok(url.clone());
                }
                Ok(Err(status)) => last = format!("{url}: {}", status.message()),
                Err(_) => last = format!("{url}: timed out"),
            }
        }
        self.connected.store(false, Ordering::Relaxed);
        Err(last)
    }

    /// A region id no other region of the cluster has or will get: a counter at
    /// `<prefix>next_region_id` advanced with a compare-and-swap (ids start at 2; the first
    /// region is 1).
    pub async fn allocate_region_id(&self) -> Result<u64, String> {
        let key = format!("{}next_region_id", self.prefix).into_bytes();
        let mut last = String::from("no chainfire endpoint");
        for _attempt in 0..20 {
            for (url, client) in &self.clients {
                let mut client = client.clone();
                let read = RangeRequest { key: key.clone(), ..Default::default() };
                let current = match tokio::time::timeout(CALL_TIMEOUT, client.range(read)).await {
                    Ok(Ok(answer)) => answer.into_inner().kvs.pop(),
                    Ok(Err(status)) => {
                        last = format!("{url}: {}", status.message());
                        continue;
                    }
                    Err(_) => {
                        last = format!("{url}: timed out");
                        continue;
                    }
                };
                let (next, mod_revision) = match &current {
                    Some(kv) => {
                        (String::from_utf8_lossy(&kv.value).parse::<u64>().map_err(|e| e.to_string())?, kv.mod_revision)
                    }
                    None => (2, 0),
                };
                let txn = TxnRequest {
                    compare: vec![Compare {
                        key: key.clone(),
                        result: compare::CompareResult::Equal as i32,
                        target: compare::CompareTarget::Mod as i32,
                        target_union: Some(compare::TargetUnion::ModRevision(mod_revision)),
                        ..Default::default()
                    }],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: key.clone(),
                            value: (next + 1).to_string().into_bytes(),
                            ..Default::default()
                        })),
                    }],
                    failure: vec![],
                };
                match tokio::time::timeout(CALL_TIMEOUT, client.txn(txn)).await {
                    Ok(Ok(answer)) if answer.get_ref().succeeded => return Ok(next),
                    Ok(Ok(_)) => break, // Another store took it: read again.
                    Ok(Err(status)) => last = format!("{url}: {}", status.message()),
                    Err(_) => last = format!("{url}: timed out"),
                }
            }
        }
        Err(format!("cannot allocate a region id in chainfire: {last}"))
    }

    /// Writes `value` (JSON) at `<prefix><key>` through the first endpoint that answers.
    pub async fn put(&self, key: &str, value: &serde_json::Value) -> Result<(), String> {
        let request = PutRequest {
            key: format!("{}{key}", self.prefix).into_bytes(),
            value: value.to_string().into_bytes(),
            ..Default::default()
        };
        let mut last = String::from("no chainfire endpoint");
        for (url, client) in &self.clients {
            let mut client = client.clone();
            match tokio::time::timeout(CALL_TIMEOUT, client.put(request.clone())).await {
                Ok(Ok(_)) => {
                    self.connected.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Err(status)) => last = format!("{url}: {}", status.message()),
                Err(_) => last = format!("{url}: timed out"),
            }
        }
        self.connected.store(false, Ordering::Relaxed);
        Err(last)
    }
}
