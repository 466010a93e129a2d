//! FlareDB's link to chainfire, where the region map lives: the start-up check (FlareDB
//! Requires chainfire), a health probe, reads and writes of the map, region id allocation, and
//! leases (store liveness, the placement leadership).
//!
//! Layout under `chainfire.prefix` (default `/flaredb/`):
//! - `stores/<id>` → `{"id","api_url","peer_addr"}`, attached to the store's lease: present
//!   exactly while the store is alive;
//! - `regions/<id>` → `{"id","start_key","end_key","epoch","peers","leader"}` (keys in hex),
//!   written by the region's leader whenever one of those changes;
//! - `next_region_id` → the next free region id;
//! - `placement/leader` → the id of the store running placement, attached to its lease.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::lease_client::LeaseClient;
use photon_api::etcd::etcdserverpb::{
    compare, request_op, Compare, LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, RangeRequest, RangeResponse,
    RequestOp, TxnRequest,
};
use photon_client::ChannelOptions;
use tonic::transport::Channel;

use crate::config::ChainfireSection;

/// How often the health probe asks chainfire.
const PROBE_EVERY: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct Chainfire {
    channels: Vec<(String, Channel)>,
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
        let mut channels = Vec::new();
        for url in &config.endpoints {
            let channel = photon_client::lazy_channel(url, &options)
                .map_err(|e| anyhow::anyhow!("chainfire endpoint {url}: {e}"))?;
            channels.push((url.clone(), channel));
        }
        let link = Self { channels, prefix: config.prefix.clone(), connected: Arc::new(AtomicBool::new(false)) };
        let deadline = Instant::now() + Duration::from_millis(config.connect_timeout_ms);
        loop {
            match link.probe().await {
                Ok(()) => {
                    tracing::info!(chainfire = %config.endpoints.join(","), "connected to chainfire");
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

    /// Whether the last call reached chainfire.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Runs `call` against the endpoints in turn until one answers; records whether any did.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, String>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut last = String::from("no chainfire endpoint");
        for (url, channel) in &self.channels {
            match tokio::time::timeout(CALL_TIMEOUT, call(channel.clone())).await {
                Ok(Ok(answer)) => {
                    self.connected.store(true, Ordering::Relaxed);
                    return Ok(answer.into_inner());
                }
                Ok(Err(status)) => last = format!("{url}: {}", status.message()),
                Err(_) => last = format!("{url}: timed out"),
            }
        }
        self.connected.store(false, Ordering::Relaxed);
        Err(last)
    }

    fn key(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.prefix).into_bytes()
    }

    async fn range(&self, request: RangeRequest) -> Result<RangeResponse, String> {
        self.call(|channel| {
            let request = request.clone();
            async move { KvClient::new(channel).range(request).await }
        })
        .await
    }

    /// Writes `value` at `key` (attached to `lease`) if `compare` holds; whether it did.
    async fn put_if(&self, compare: Compare, key: Vec<u8>, value: Vec<u8>, lease: i64) -> Result<bool, String> {
        let txn = TxnRequest {
            compare: vec![compare],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest { key, value, lease, ..Default::default() })),
            }],
            failure: vec![],
        };
        let answer = self
            .call(|channel| {
                let txn = txn.clone();
                async move { KvClient::new(channel).txn(txn).await }
            })
            .await?;
        Ok(answer.succeeded)
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
                    Ok(()) if !was => tracing::info!("chainfire is reachable again"),
                    Err(e) if was => {
                        tracing::warn!(error = %e, "lost chainfire: serving known regions, region map updates wait")
                    }
                    _ => {}
                }
            }
        });
    }

    async fn probe(&self) -> Result<(), String> {
        let request =
            RangeRequest { key: self.key("stores/"), count_only: true, serializable: true, ..Default::default() };
        self.range(request).await.map(|_| ())
    }

    /// Writes `value` (JSON) at `<prefix><key>`, attached to `lease` (0: none).
    pub async fn put(&self, key: &str, value: &serde_json::Value, lease: i64) -> Result<(), String> {
        let request =
            PutRequest { key: self.key(key), value: value.to_string().into_bytes(), lease, ..Default::default() };
        self.call(|channel| {
            let request = request.clone();
            async move { KvClient::new(channel).put(request).await }
        })
        .await
        .map(|_| ())
    }

    /// Every entry under `<prefix><dir>` as (key without the prefix and dir, JSON value).
    pub async fn list(&self, dir: &str) -> Result<Vec<(String, serde_json::Value)>, String> {
        let mut end = self.key(dir);
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let answer = self.range(RangeRequest { key: self.key(dir), range_end: end, ..Default::default() }).await?;
        let skip = self.key(dir).len();
        Ok(answer
            .kvs
            .into_iter()
            .filter_map(|kv| {
                let name = String::from_utf8_lossy(kv.key.get(skip..)?).into_owned();
                Some((name, serde_json::from_slice(&kv.value).ok()?))
            })
            .collect())
    }

    /// A lease of `ttl_seconds`; everything attached to it goes when it is not kept alive.
    pub async fn grant_lease(&self, ttl_seconds: i64) -> Result<i64, String> {
        let request = LeaseGrantRequest { ttl: ttl_seconds, id: 0 };
        let answer = self
            .call(|channel| {
                let request = request.clone();
                async move { LeaseClient::new(channel).lease_grant(request).await }
            })
            .await?;
        Ok(answer.id)
    }

    /// Refreshes `lease`; `false` once it has expired.
    pub async fn keep_alive(&self, lease: i64) -> Result<bool, String> {
        let answer = self
            .call(|channel| async move {
                let once = tokio_stream::once(LeaseKeepAliveRequest { id: lease });
                let mut responses = LeaseClient::new(channel).lease_keep_alive(once).await?.into_inner();
                match responses.message().await? {
                    Some(answer) => Ok(tonic::Response::new(answer)),
                    None => Err(tonic::Status::unavailable("keep-alive stream closed")),
                }
            })
            .await?;
        Ok(answer.ttl > 0)
    }

    /// Creates `<prefix><key>` = `value` attached to `lease` unless the key exists; whether
    /// this call created it.
    pub async fn create(&self, key: &str, value: &serde_json::Value, lease: i64) -> Result<bool, String> {
        let key = self.key(key);
        let absent = Compare {
            key: key.clone(),
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            target_union: Some(compare::TargetUnion::CreateRevision(0)),
            ..Default::default()
        };
        self.put_if(absent, key, value.to_string().into_bytes(), lease).await
    }

    /// A region id no other region of the cluster has or will get: a counter at
    /// `<prefix>next_region_id` advanced with a compare-and-swap (ids start at 2; the first
    /// region is 1).
    pub async fn allocate_region_id(&self) -> Result<u64, String> {
        let key = self.key("next_region_id");
        for _attempt in 0..50 {
            let current = self.range(RangeRequest { key: key.clone(), ..Default::default() }).await?.kvs.pop();
            let (next, mod_revision) = match &current {
                Some(kv) => {
                    let text = String::from_utf8_lossy(&kv.value);
                    (text.parse::<u64>().map_err(|_| format!("next_region_id holds {text:?}"))?, kv.mod_revision)
                }
                None => (2, 0),
            };
            let unchanged = Compare {
                key: key.clone(),
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Mod as i32,
                target_union: Some(compare::TargetUnion::ModRevision(mod_revision)),
                ..Default::default()
            };
            if self.put_if(unchanged, key.clone(), (next + 1).to_string().into_bytes(), 0).await? {
                return Ok(next);
            }
            // Another store took it: read again.
        }
        Err("cannot allocate a region id: the counter in chainfire keeps moving".into())
    }
}
