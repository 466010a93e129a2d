//! The `photon.flaredb.v1.Kv` gRPC service: protobuf in and out, the work in `ops.rs`.

use std::pin::Pin;

use photon_api::flaredb::v1 as pb;
use photon_api::flaredb::v1::kv_server::Kv;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use crate::keys;
use crate::ops::Scan;
use crate::store::Store;

pub struct KvService {
    store: Store,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl KvService {
    /// Watch streams run on `tasks` and end at `shutdown`.
    pub fn new(store: Store, tasks: TaskTracker, shutdown: CancellationToken) -> Self {
        Self { store, tasks, shutdown }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let r = request.into_inner();
        self.store.check_route(&r.namespace, &r.key, r.region.as_ref())?;
        let found = self.store.get(&r.namespace, &r.key).await?;
        Ok(Response::new(pb::GetResponse { record: found }))
    }

    async fn batch_get(&self, request: Request<pb::BatchGetRequest>) -> Result<Response<pb::BatchGetResponse>, Status> {
        let r = request.into_inner();
        if let Some(first) = r.keys.first() {
            self.store.check_route(&r.namespace, first, r.region.as_ref())?;
        }
        let records = self.store.batch_get(&r.namespace, &r.keys).await?;
        Ok(Response::new(pb::BatchGetResponse { records: records.into_iter().collect() }))
    }

    async fn put(&self, request: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let r = request.into_inner();
        self.store.check_route(&r.namespace, &r.key, r.region.as_ref())?;
        let version = self.store.put(&r.namespace, &r.key, &r.value, r.ttl_seconds).await?;
        Ok(Response::new(pb::PutResponse { version }))
    }

    async fn batch_put(&self, request: Request<pb::BatchPutRequest>) -> Result<Response<pb::BatchPutResponse>, Status> {
        let r = request.into_inner();
        if let Some(first) = r.entries.first() {
            self.store.check_route(&r.namespace, &first.key, r.region.as_ref())?;
        }
        let entries: Vec<_> = r.entries.into_iter().map(|e| (e.key, e.value, e.ttl_seconds)).collect();
        let versions = self.store.batch_put(&r.namespace, &entries, r.in_order).await?;
        Ok(Response::new(pb::BatchPutResponse { versions }))
    }

    async fn delete(&self, request: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = request.into_inner();
        self.store.check_route(&r.namespace, &r.key, r.region.as_ref())?;
        let previous = self.store.delete(&r.namespace, &r.key).await?;
        Ok(Response::new(pb::DeleteResponse { deleted: previous.is_some(), previous }))
    }

    async fn scan(&self, request: Request<pb::ScanRequest>) -> Result<Response<pb::ScanResponse>, Status> {
        let r = request.into_inner();
        // A hint names the region of the first page's start key (later pages resume from a
        // continuation the server gave, which is checked against the region map as it is).
        if !r.reverse && r.continuation.is_empty() && !r.start.is_empty() {
            self.store.check_route(&r.namespace, &r.start, r.region.as_ref())?;
        }
        let scan = Scan {
            namespace: r.namespace,
            start: r.start,
            end: r.end,
            limit: r.limit as usize,
            reverse: r.reverse,
            keys_only: r.keys_only,
            value_prefix: r.value_prefix as usize,
            continuation: r.continuation,
        };
        let page = self.store.scan(&scan).await?;
        Ok(Response::new(pb::ScanResponse {
            records: page.records.into_iter().collect(),
            continuation: page.continuation,
        }))
    }

    async fn compare_and_swap(
        &self,
        request: Request<pb::CompareAndSwapRequest>,
    ) -> Result<Response<pb::CompareAndSwapResponse>, Status> {
        let r = request.into_inner();
        self.store.check_route(&r.namespace, &r.key, r.region.as_ref())?;
        let (succeeded, current) =
            self.store.compare_and_swap(&r.namespace, &r.key, r.expected_version, &r.value, r.ttl_seconds).await?;
        Ok(Response::new(pb::CompareAndSwapResponse { succeeded, record: current }))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let r = request.into_inner();
        self.store.consistency(&r.namespace)?;
        let prefix = keys::store_key(&r.namespace, &r.prefix);
        let namespace = r.namespace;
        let mut changes = self.store.subscribe();
        let shutdown = self.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        self.tasks.spawn(async move {
            loop {
                let received = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return, // The client went away.
                    received = changes.recv() => received,
                };
                let change = match received {
                    Ok(change) => change,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "watcher fell {missed} changes behind; read again and start a new watch"
                            ))))
                            .await;
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if !change.key.starts_with(&prefix) {
                    continue;
                }
                let Some(key) = keys::user_key(&change.key, &namespace) else { continue };
                let event = match &change.record {
                    Some(r) => pb::WatchEvent {
                        kind: pb::watch_event::Kind::Put as i32,
                        record: Some(pb::Record {
                            key: key.to_vec(),
                            value: r.value.clone().into(),
                            version: r.version,
                            expires_at_ms: r.expires_at_ms,
                        }),
                    },
                    None => pb::WatchEvent {
                        kind: pb::watch_event::Kind::Delete as i32,
                        record: Some(pb::Record { key: key.to_vec(), ..Default::default() }),
                    },
                };
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
