//! The client: configuration, connections, the retry loop, and the key-value calls.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use photon_api::flaredb::v1 as pb;
use photon_api::flaredb::v1::kv_client::KvClient;
use photon_api::flaredb::v1::regions_client::RegionsClient;
use photon_client::ChannelOptions;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::coalesce::{Call, Coalescer, Get, Outcome, Put};
use crate::keys::store_key;
use crate::routing::Routes;
use crate::Error;

/// How to reach FlareDB.
#[derive(Debug, Clone)]
pub struct Config {
    /// API URLs of some stores (one is enough; the rest are learned).
    pub endpoints: Vec<String>,
    /// CA that signs the stores' certificates (system roots when unset).
    pub ca: Option<PathBuf>,
    /// How long to keep retrying while the cluster recovers (elections, moves).
    pub retry_for: Duration,
    /// Bound on one call to one store.
    pub call_timeout: Duration,
    /// Batches of concurrent gets (and of puts) of one region on their way at once; calls made
    /// meanwhile wait and go together as the next batch (`coalesce`). 0: every call goes alone.
    pub batch_in_flight: usize,
}

impl Config {
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ca: None,
            retry_for: Duration::from_secs(10),
            call_timeout: Duration::from_secs(5),
            batch_in_flight: 1,
        }
    }

    pub fn ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.ca = Some(ca.into());
        self
    }
}

/// Options of [`Client::scan`].
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Most records returned in all (0: no limit).
    pub limit: usize,
    pub reverse: bool,
    pub keys_only: bool,
    /// Values cut to at most this many leading bytes (0: whole).
    pub value_prefix: usize,
}

/// A FlareDB client. Cheap to clone; clones share connections and the region map.
#[derive(Clone)]
pub struct Client {
    pub(crate) config: Arc<Config>,
    options: ChannelOptions,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    pub(crate) routes: Arc<RwLock<Routes>>,
    pub(crate) coalescer: Arc<Coalescer>,
}

/// What to do with a failed call.
enum Failure {
    /// Provably not applied (unreachable store, no leader, wrong region): retry.
    Retry(String),
    /// Sent, no answer: retry only if the call is idempotent.
    Unknown(String),
    /// The store refused it: give up.
    Refused(Status),
}

fn classify(status: Status) -> Failure {
    // Both are answered before anything is proposed: the client's map is stale.
    let misrouted = status
        .metadata()
        .get("flaredb-error")
        .is_some_and(|v| v.as_bytes() == b"wrong-region" || v.as_bytes() == b"stale-epoch");
    match status.code() {
        // Refused before anything was proposed, or never delivered.
        Code::FailedPrecondition if misrouted => Failure::Retry(status.message().to_string()),
        _ if photon_client::never_sent(&status) => Failure::Retry(status.message().to_string()),
        // A reset connection, a region without a leader, a timeout: it may have been applied.
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Internal => {
            Failure::Unknown(status.message().to_string())
        }
        _ => Failure::Refused(status),
    }
}

impl Client {
    /// Connects lazily to `config.endpoints` and learns the region map.
    pub async fn connect(config: Config) -> Result<Self, Error> {
        if config.endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let options =
            ChannelOptions { ca: config.ca.clone(), connect_timeout: Some(config.call_timeout), ..Default::default() };
        let client = Self {
            config: Arc::new(config),
            options,
            channels: Arc::default(),
            routes: Arc::default(),
            coalescer: Arc::default(),
        };
        for url in &client.config.endpoints {
            client.channel(url)?;
        }
        client.refresh().await;
        Ok(client)
    }

    fn channel(&self, url: &str) -> Result<Channel, Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = photon_client::lazy_channel(url, &self.options)
            .map_err(|e| Error::Endpoint { url: url.to_string(), reason: e.to_string() })?;
        channels.insert(url.to_string(), channel.clone());
        Ok(channel)
    }

    /// Asks every known store for its regions and folds the answers into the map.
    async fn refresh(&self) {
        let mut urls = self.config.endpoints.clone();
        urls.extend(self.routes.read().unwrap_or_else(|p| p.into_inner()).store_urls());
        urls.sort();
        urls.dedup();
        for url in urls {
            let Ok(channel) = self.channel(&url) else { continue };
            let mut regions = RegionsClient::new(channel);
            let mut request = tonic::Request::new(pb::ListRegionsRequest {});
            request.set_timeout(self.config.call_timeout.min(Duration::from_secs(2)));
            if let Ok(answer) = regions.list_regions(request).await {
                self.routes.write().unwrap_or_else(|p| p.into_inner()).learn(answer.into_inner().regions);
            }
        }
    }

    /// Runs `call` against the store that should serve store key `key`, retrying as the
    /// module documentation says. `idempotent` calls are also retried after an unknown outcome.
    async fn run<T, F, Fut>(&self, key: &[u8], reverse: bool, idempotent: bool, call: F) -> Result<T, Error>
    where
        F: Fn(KvClient<Channel>, Option<pb::RegionEpoch>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_millis(25);
        let mut attempt = 0usize;
        loop {
            let routed = self.routes.read().unwrap_or_else(|p| p.into_inner()).route_for(key, reverse);
            // Unknown route, or retrying: rotate through the configured endpoints too.
            let (url, region) = match routed {
                Some((url, region)) if attempt == 0 || attempt % 2 == 1 => (url, Some(region)),
                _ => (self.config.endpoints[attempt % self.config.endpoints.len()].clone(), None),
            };
            attempt += 1;
            let kv = KvClient::new(self.channel(&url)?).max_decoding_message_size(64 << 20);
            let failure = match tokio::time::timeout(self.config.call_timeout, call(kv, region)).await {
                Ok(Ok(answer)) => return Ok(answer.into_inner()),
                Ok(Err(status)) => classify(status),
                Err(_) => Failure::Unknown(format!("{url}: no answer within {:?}", self.config.call_timeout)),
            };
            let last = match failure {
                Failure::Refused(status) => return Err(Error::Refused(status)),
                Failure::Unknown(why) if !idempotent => return Err(Error::Unknown(why)),
                Failure::Unknown(why) | Failure::Retry(why) => why,
            };
            if started.elapsed() + pause > self.config.retry_for {
                return Err(Error::Unavailable { waited_ms: started.elapsed().as_millis(), last });
            }
            tracing::debug!(url = %url, reason = %last, "flaredb call failed; refreshing routes and retrying");
            self.routes.write().unwrap_or_else(|p| p.into_inner()).forget_leader(key);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
            self.refresh().await;
        }
    }

    pub async fn get(&self, namespace: &str, key: &[u8]) -> Result<Option<pb::Record>, Error> {
        if let Some(lane) = self.lane(namespace, key, false) {
            let (reply, answer) = tokio::sync::oneshot::channel();
            self.submit(lane, Call::Get(Get { key: key.to_vec(), reply }));
            if let Ok(Outcome::Done(answer)) = answer.await {
                return answer;
            }
        }
        self.get_alone(namespace, key).await
    }

    /// A get in a request of its own.
    pub(crate) async fn get_alone(&self, namespace: &str, key: &[u8]) -> Result<Option<pb::Record>, Error> {
        let request = pb::GetRequest { namespace: namespace.into(), key: key.to_vec(), region: None };
        let answer = self
            .run(&store_key(namespace, key), false, true, |mut kv, region| {
                let request = with_region(&request, region);
                async move { kv.get(request).await }
            })
            .await?;
        Ok(answer.record)
    }

    /// The records of `keys` that exist (all keys must be in one region for one round trip;
    /// otherwise they are fetched region by region).
    pub async fn batch_get(&self, namespace: &str, keys: &[Vec<u8>]) -> Result<Vec<pb::Record>, Error> {
        let mut out = Vec::new();
        for key in keys {
            out.extend(self.get(namespace, key).await?);
        }
        Ok(out)
    }

    /// One `BatchGet` of `keys` (of one region), routed by the first: the records that exist,
    /// in request order.
    pub(crate) async fn batch_get_one_region(
        &self,
        namespace: &str,
        keys: Vec<Vec<u8>>,
    ) -> Result<Vec<pb::Record>, Error> {
        let Some(first) = keys.first() else { return Ok(Vec::new()) };
        let routing = store_key(namespace, first);
        let request = pb::BatchGetRequest { namespace: namespace.into(), keys, region: None };
        let answer = self
            .run(&routing, false, true, |mut kv, region| {
                let request = with_region(&request, region);
                async move { kv.batch_get(request).await }
            })
            .await?;
        Ok(answer.records)
    }

    /// Writes `value`; the key's new version.
    pub async fn put(&self, namespace: &str, key: &[u8], value: &[u8]) -> Result<u64, Error> {
        self.put_with_ttl(namespace, key, value, 0).await
    }

    /// Writes `value`, gone after `ttl_seconds` (0: never).
    pub async fn put_with_ttl(
        &self,
        namespace: &str,
        key: &[u8],
        value: &[u8],
        ttl_seconds: u64,
    ) -> Result<u64, Error> {
        if let Some(lane) = self.lane(namespace, key, true) {
            let (reply, answer) = tokio::sync::oneshot::channel();
            let entry = pb::Entry { key: key.to_vec(), value: value.to_vec(), ttl_seconds };
            self.submit(lane, Call::Put(Put { entry, reply }));
            match answer.await {
                Ok(Outcome::Done(answer)) => return answer,
                Ok(Outcome::Alone) => {}
                // The batch's task ended after it may have sent this put: its outcome is unknown.
                Err(_) => return Err(Error::Unknown("the batch carrying this put ended without an answer".into())),
            }
        }
        self.put_alone(namespace, key.to_vec(), value.to_vec(), ttl_seconds).await
    }

    /// A put in a request of its own.
    pub(crate) async fn put_alone(
        &self,
        namespace: &str,
        key: Vec<u8>,
        value: Vec<u8>,
        ttl_seconds: u64,
    ) -> Result<u64, Error> {
        let routing = store_key(namespace, &key);
        let request = pb::PutRequest { namespace: namespace.into(), key, value, ttl_seconds, region: None };
        let answer = self
            .run(&routing, false, false, |mut kv, region| {
                let request = with_region(&request, region);
                async move { kv.put(request).await }
            })
            .await?;
        Ok(answer.version)
    }

    /// Writes every (key, value) atomically; the keys must share a region (a key listed twice
    /// is refused).
    pub async fn batch_put(&self, namespace: &str, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<u64>, Error> {
        let entries =
            entries.iter().map(|(k, v)| pb::Entry { key: k.clone(), value: v.clone(), ttl_seconds: 0 }).collect();
        self.batch_put_entries(namespace, entries, false).await
    }

    /// One `BatchPut` of `entries` (of one region), routed by the first; `in_order` writes a
    /// key listed twice twice, in order.
    pub(crate) async fn batch_put_entries(
        &self,
        namespace: &str,
        entries: Vec<pb::Entry>,
        in_order: bool,
    ) -> Result<Vec<u64>, Error> {
        let Some(first) = entries.first() else { return Ok(Vec::new()) };
        let routing = store_key(namespace, &first.key);
        let request = pb::BatchPutRequest { namespace: namespace.into(), entries, in_order, region: None };
        let answer = self
            .run(&routing, false, false, |mut kv, region| {
                let request = with_region(&request, region);
                async move { kv.batch_put(request).await }
            })
            .await?;
        Ok(answer.versions)
    }

    /// Deletes the key; whether it existed.
    pub async fn delete(&self, namespace: &str, key: &[u8]) -> Result<bool, Error> {
        Ok(self.take(namespace, key).await?.is_some())
    }

    /// Deletes the key and returns the live record it held, if any: exactly the record that was
    /// removed, whatever other writers did before. (A delete retried after a lost answer finds
    /// nothing the second time and answers `None`.)
    pub async fn take(&self, namespace: &str, key: &[u8]) -> Result<Option<pb::Record>, Error> {
        let request = pb::DeleteRequest { namespace: namespace.into(), key: key.to_vec(), region: None };
        let answer = self
            .run(&store_key(namespace, key), false, true, |mut kv, region| {
                let request = with_region(&request, region);
                async move { kv.delete(request).await }
            })
            .await?;
        Ok(answer.previous)
    }

    /// Writes `value` only if the key is at `expected_version` (0: absent). Whether it did, and
    /// the new record or the current one.
    pub async fn compare_and_swap(
        &self,
        namespace: &str,
        key: &[u8],
        expected_version: u64,
        value: &[u8],
    ) -> Result<(bool, Option<pb::Record>), Error> {
        let request = pb::CompareAndSwapRequest {
            namespace: namespace.into(),
            key: key.to_vec(),
            expected_version,
            value: value.to_vec(),
            ttl_seconds: 0,
            region: None,
        };
        let answer = self
            .run(&store_key(namespace, key), false, false, |mut kv, region| {
                let request = with_region(&request, region);
                async move { kv.compare_and_swap(request).await }
            })
            .await?;
        Ok((answer.succeeded, answer.record))
    }

    /// Records with keys in [start, end) (end empty: to the end of the namespace), across
    /// regions, in order.
    pub async fn scan(
        &self,
        namespace: &str,
        start: &[u8],
        end: &[u8],
        options: ScanOptions,
    ) -> Result<Vec<pb::Record>, Error> {
        let mut out = Vec::new();
        let mut continuation = Vec::new();
        loop {
            let remaining = if options.limit == 0 { 0 } else { options.limit - out.len() };
            let request = pb::ScanRequest {
                namespace: namespace.into(),
                start: start.to_vec(),
                end: end.to_vec(),
                limit: remaining.min(u32::MAX as usize) as u32,
                reverse: options.reverse,
                keys_only: options.keys_only,
                value_prefix: options.value_prefix.min(u32::MAX as usize) as u32,
                continuation: continuation.clone(),
                region: None,
            };
            // The page starts at the continuation (a store key) or at the scan's own edge.
            let from = if !continuation.is_empty() {
                continuation.clone()
            } else if options.reverse {
                if end.is_empty() {
                    crate::keys::namespace_end(namespace)
                } else {
                    store_key(namespace, end)
                }
            } else {
                store_key(namespace, start)
            };
            let page = self
                .run(&from, options.reverse, true, |mut kv, region| {
                    let request = with_region(&request, region);
                    async move { kv.scan(request).await }
                })
                .await?;
            out.extend(page.records);
            if page.continuation.is_empty() || (options.limit != 0 && out.len() >= options.limit) {
                out.truncate(if options.limit == 0 { out.len() } else { options.limit });
                return Ok(out);
            }
            continuation = page.continuation;
        }
    }

    /// Changes under `prefix` from now on, from one store (every replica applies every change).
    pub async fn watch(&self, namespace: &str, prefix: &[u8]) -> Result<tonic::Streaming<pb::WatchEvent>, Error> {
        let request = pb::WatchRequest { namespace: namespace.into(), prefix: prefix.to_vec() };
        self.run(&store_key(namespace, prefix), false, true, |mut kv, region| {
            let request = with_region(&request, region);
            async move { kv.watch(request).await }
        })
        .await
    }
}

/// Requests that name the region they were routed by (see `RegionEpoch` in the proto).
trait Routed: Clone {
    fn set_region(&mut self, region: Option<pb::RegionEpoch>);
}

macro_rules! routed {
    ($($t:ty),*) => {$(
        impl Routed for $t {
            fn set_region(&mut self, region: Option<pb::RegionEpoch>) {
                self.region = region;
            }
        }
    )*};
}
routed!(
    pb::GetRequest,
    pb::BatchGetRequest,
    pb::PutRequest,
    pb::BatchPutRequest,
    pb::DeleteRequest,
    pb::CompareAndSwapRequest
);

impl Routed for pb::ScanRequest {
    /// Only the first page of a forward scan from a key is checked by the store.
    fn set_region(&mut self, region: Option<pb::RegionEpoch>) {
        if !self.reverse && self.continuation.is_empty() && !self.start.is_empty() {
            self.region = region;
        }
    }
}

impl Routed for pb::WatchRequest {
    fn set_region(&mut self, _: Option<pb::RegionEpoch>) {}
}

fn with_region<R: Routed>(request: &R, region: Option<pb::RegionEpoch>) -> R {
    let mut request = request.clone();
    request.set_region(region);
    request
}
