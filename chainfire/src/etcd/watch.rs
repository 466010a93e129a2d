//! etcd's `Watch` service: one bidirectional stream carries many watchers. Each watcher has
//! the next revision it owes its client; whenever the store revision moves (or a watcher is
//! created with a start revision in the past) the stream reads the events it owes from the
//! history and sends them. History replay and live delivery are the same code path, and a
//! slow client only delays its own stream.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::{Duration, Instant};

use photon_api::etcd::etcdserverpb::watch_create_request::FilterType;
use photon_api::etcd::etcdserverpb::watch_server::Watch;
use photon_api::etcd::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest, WatchResponse};
use photon_api::etcd::mvccpb;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use crate::error::ChainfireError;
use crate::mvcc::events::{self, EventKind};
use crate::mvcc::model::KeyRange;
use crate::node::Node;

/// The watch id of responses that belong to no watcher (progress replies), as etcd uses.
const NO_WATCH_ID: i64 = -1;
/// Responses buffered per stream before the stream waits for its client.
const STREAM_BUFFER: usize = 128;

pub struct WatchService {
    node: Node,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    progress_every: Duration,
}

impl WatchService {
    pub fn new(node: Node, tasks: TaskTracker, shutdown: CancellationToken, progress_every: Duration) -> Self {
        Self { node, tasks, shutdown, progress_every }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<Streaming<WatchRequest>>) -> Result<Response<WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = ClientStream {
            node: self.node.clone(),
            out: tx,
            watchers: BTreeMap::new(),
            next_id: 0,
            progress_every: self.progress_every,
        };
        let (incoming, revisions, shutdown) =
            (request.into_inner(), self.node.revisions.clone(), self.shutdown.clone());
        self.tasks.spawn(async move {
            if let Err(e) = stream.run(incoming, revisions, shutdown).await {
                tracing::debug!(error = %e, "watch stream ended");
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Watcher {
    range: KeyRange,
    /// The first revision not yet sent.
    next: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
    last_sent: Instant,
}

/// The state of one client's watch stream.
struct ClientStream {
    node: Node,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
    progress_every: Duration,
}

/// The client went away: the stream ends.
#[derive(Debug, thiserror::Error)]
#[error("watch client disconnected")]
struct Gone;

impl ClientStream {
    async fn run(
        mut self,
        mut incoming: Streaming<WatchRequest>,
        mut revisions: watch::Receiver<i64>,
        shutdown: CancellationToken,
    ) -> Result<(), Gone> {
        let mut progress =
            tokio::time::interval(self.progress_every.min(Duration::from_secs(1)).max(Duration::from_millis(10)));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = incoming.message() => match message {
                    Ok(Some(request)) => self.handle(request).await?,
                    Ok(None) | Err(_) => return Ok(()),
                },
                changed = revisions.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    self.deliver().await?;
                }
                _ = progress.tick() => self.notify_progress().await?,
            }
        }
    }

    async fn send(&self, response: WatchResponse) -> Result<(), Gone> {
        self.out.send(Ok(response)).await.map_err(|_| Gone)
    }

    fn current_revision(&self) -> i64 {
        *self.node.revisions.borrow()
    }

    fn response(&self, watch_id: i64) -> WatchResponse {
        WatchResponse { header: Some(self.node.header(self.current_revision())), watch_id, ..Default::default() }
    }

    async fn handle(&mut self, request: WatchRequest) -> Result<(), Gone> {
        match request.request_union {
            Some(watch_request::RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(watch_request::RequestUnion::CancelRequest(cancel)) => {
                if self.watchers.remove(&cancel.watch_id).is_some() {
                    self.send(WatchResponse { canceled: true, ..self.response(cancel.watch_id) }).await?;
                }
                Ok(())
            }
            Some(watch_request::RequestUnion::ProgressRequest(_)) => {
                // Answered only once every watcher is caught up, so the revision it reports is
                // one the client has seen everything up to.
                self.deliver().await?;
                self.send(self.response(NO_WATCH_ID)).await
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, create: WatchCreateRequest) -> Result<(), Gone> {
        let id = if create.watch_id != 0 { create.watch_id } else { self.next_id };
        if self.watchers.contains_key(&id) {
            let refused = WatchResponse {
                created: true,
                canceled: true,
                cancel_reason: "etcdserver: duplicate watch ID".into(),
                ..self.response(id)
            };
            return self.send(refused).await;
        }
        self.next_id = self.next_id.max(id + 1);
        let current = self.current_revision();
        let next = if create.start_revision > 0 { create.start_revision } else { current + 1 };
        let filters: Vec<FilterType> = create.filters.iter().filter_map(|f| FilterType::try_from(*f).ok()).collect();
        let watcher = Watcher {
            range: KeyRange { key: create.key, end: create.range_end },
            next,
            prev_kv: create.prev_kv,
            no_put: filters.contains(&FilterType::Noput),
            no_delete: filters.contains(&FilterType::Nodelete),
            progress_notify: create.progress_notify,
            last_sent: Instant::now(),
        };
        self.watchers.insert(id, watcher);
        self.send(WatchResponse { created: true, ..self.response(id) }).await?;
        self.deliver().await
    }

    /// Sends every watcher the events it is owed up to the current revision.
    async fn deliver(&mut self) -> Result<(), Gone> {
        let current = self.current_revision();
        tracing::trace!(current, watchers = self.watchers.len(), "watch delivery");
        let due: Vec<i64> = self.watchers.iter().filter(|(_, w)| w.next <= current).map(|(id, _)| *id).collect();
        for id in due {
            let Some(watcher) = self.watchers.get(&id) else {
                continue;
            };
            let read = self.node.read(|reader| {
                let compact = reader.compact_revision()?;
                if watcher.next < compact {
                    return Ok(Err(compact));
                }
                Ok(Ok(events::events(reader, watcher.next, current, &watcher.range, watcher.prev_kv)?))
            });
            match read {
                Ok(Ok(found)) => {
                    let events: Vec<mvccpb::Event> = found
                        .into_iter()
                        .filter(|e| {
                            !(watcher.no_put && e.kind == EventKind::Put
                                || watcher.no_delete && e.kind == EventKind::Delete)
                        })
                        .map(event)
                        .collect();
                    if let Some(watcher) = self.watchers.get_mut(&id) {
                        watcher.next = current + 1;
                        if !events.is_empty() {
                            watcher.last_sent = Instant::now();
                        }
                    }
                    if !events.is_empty() {
                        self.send(WatchResponse { events, ..self.response(id) }).await?;
                    }
                }
                Ok(Err(compact_revision)) => {
                    self.watchers.remove(&id);
                    let response = WatchResponse {
                        compact_revision,
                        canceled: true,
                        cancel_reason: ChainfireError::Mvcc(crate::mvcc::model::MvccError::Compacted {
                            compact_revision,
                        })
                        .to_string(),
                        ..self.response(id)
                    };
                    self.send(response).await?;
                }
                Err(e) => {
                    let _ = self.out.send(Err(e.into())).await;
                    return Err(Gone);
                }
            }
        }
        Ok(())
    }

    /// Empty responses for idle watchers that asked for progress notifications.
    async fn notify_progress(&mut self) -> Result<(), Gone> {
        let current = self.current_revision();
        let now = Instant::now();
        let every = self.progress_every;
        let idle: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.progress_notify && w.next > current && now.duration_since(w.last_sent) >= every)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            if let Some(w) = self.watchers.get_mut(&id) {
                w.last_sent = now;
            }
            self.send(self.response(id)).await?;
        }
        Ok(())
    }
}

fn event(e: events::Event) -> mvccpb::Event {
    let kind = match e.kind {
        EventKind::Put => mvccpb::event::EventType::Put,
        EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event { r#type: kind as i32, kv: Some(convert::kv(e.kv)), prev_kv: e.prev.map(convert::kv) }
}
