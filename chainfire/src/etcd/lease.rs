//! etcd's `Lease` service: Grant, Revoke, KeepAlive (a stream), TimeToLive, Leases.

use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use photon_api::etcd::etcdserverpb::lease_server::Lease;
use photon_api::etcd::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::ChainfireError;
use crate::leases::{LeaseKeeper, MAX_TTL};
use crate::mvcc::model::{Command, MvccError};
use crate::node::Node;

pub struct LeaseService {
    node: Node,
    keeper: LeaseKeeper,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// The shortest TTL granted (etcd: 1.5 election timeouts), in seconds.
    min_ttl: i64,
}

impl LeaseService {
    pub fn new(node: Node, keeper: LeaseKeeper, tasks: TaskTracker, shutdown: CancellationToken, min_ttl: i64) -> Self {
        Self { node, keeper, tasks, shutdown, min_ttl }
    }

    /// A fresh lease id: positive, and distinct across members and time.
    fn new_id(&self, attempt: i64) -> i64 {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
        ((nanos.wrapping_add(attempt) ^ ((self.node.id as i64) << 48)) & i64::MAX).max(1)
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(&self, request: Request<LeaseGrantRequest>) -> Result<Response<LeaseGrantResponse>, Status> {
        let request = request.into_inner();
        if request.ttl > MAX_TTL {
            return Err(Status::out_of_range("etcdserver: too large lease TTL"));
        }
        let ttl = request.ttl.max(self.min_ttl);
        self.node.ensure_space().await?;
        // A client-chosen id must be free; a generated one is retried if it collides.
        let attempts = if request.id != 0 { 1 } else { 3 };
        for attempt in 0..attempts {
            let id = if request.id != 0 { request.id } else { self.new_id(attempt) };
            match self.node.apply(Command::LeaseGrant { id, ttl }).await {
                Ok((revision, _)) => {
                    self.keeper.granted(id, ttl);
                    return Ok(Response::new(LeaseGrantResponse {
                        header: Some(self.node.header(revision)),
                        id,
                        ttl,
                        error: String::new(),
                    }));
                }
                Err(ChainfireError::Mvcc(MvccError::LeaseExists)) if request.id == 0 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ChainfireError::Mvcc(MvccError::LeaseExists).into())
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let (revision, _) = self.node.apply(Command::LeaseRevoke { id: request.into_inner().id }).await?;
        Ok(Response::new(LeaseRevokeResponse { header: Some(self.node.header(revision)) }))
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let (node, keeper, shutdown) = (self.node.clone(), self.keeper.clone(), self.shutdown.clone());
        self.tasks.spawn(async move {
            loop {
                let message = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    message = incoming.message() => message,
                };
                let Ok(Some(request)) = message else { return };
                let reply = keeper.keep_alive(&node, request.id).map(|ttl| LeaseKeepAliveResponse {
                    header: Some(node.header(*node.revisions.borrow())),
                    id: request.id,
                    ttl,
                });
                if tx.send(reply.map_err(Status::from)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let request = request.into_inner();
        self.node.linearize().await?;
        let (revision, lease, keys) = self.node.read(|reader| {
            let lease = reader.lease(request.id)?;
            let keys = match (&lease, request.keys) {
                (Some(_), true) => reader.lease_keys(request.id)?,
                _ => Vec::new(),
            };
            Ok((reader.revision()?, lease, keys))
        })?;
        let header = Some(self.node.header(revision));
        // As etcd: an unknown (expired or revoked) lease answers TTL -1, not an error.
        let response = match lease {
            Some(lease) => LeaseTimeToLiveResponse {
                header,
                id: lease.id,
                ttl: self.keeper.remaining(lease.id, lease.ttl),
                granted_ttl: lease.ttl,
                keys,
            },
            None => LeaseTimeToLiveResponse { header, id: request.id, ttl: -1, granted_ttl: 0, keys },
        };
        Ok(Response::new(response))
    }

    async fn lease_leases(&self, _: Request<LeaseLeasesRequest>) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.node.linearize().await?;
        let (revision, leases) = self.node.read(|reader| Ok((reader.revision()?, reader.leases()?)))?;
        let leases = leases.into_iter().map(|l| LeaseStatus { id: l.id }).collect();
        Ok(Response::new(LeaseLeasesResponse { header: Some(self.node.header(revision)), leases }))
    }
}
