//! The replication port (9094): other nodes put, get and delete chunk replicas here, and write,
//! read and flush volume extents (fenced: see `volumes::fences`). Only holders of a certificate
//! from the platform CA get in (mutual TLS), as on the Raft ports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use photon_api::lightningstor::v1 as pb;
use photon_api::lightningstor::v1::replication_server::{Replication, ReplicationServer};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::repair::Hint;
use super::Replicas;
use crate::chunks::{ChunkError, ChunkRef, ChunkStore};
use crate::volumes::extents::{valid_id, ExtentError};
use crate::volumes::replicas::ExtentReplicas;

fn extent_id(id: &str) -> Result<String, Status> {
    if !valid_id(id) {
        return Err(Status::invalid_argument(format!("extent id {id:?} is not 32 lowercase hex digits")));
    }
    Ok(id.to_string())
}

fn extent_status(e: ExtentError) -> Status {
    match e {
        ExtentError::Corrupt { .. } => Status::data_loss(e.to_string()),
        ExtentError::OutOfRange { .. } | ExtentError::InvalidId(_) => Status::invalid_argument(e.to_string()),
        ExtentError::Io { .. } => Status::unavailable(e.to_string()),
    }
}

/// Extent work (blocking file I/O) off the async threads.
async fn on_disk<T: Send + 'static>(work: impl FnOnce() -> Result<T, ExtentError> + Send + 'static) -> Result<T, Status> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(extent_status),
        Err(e) => Err(Status::internal(format!("an extent operation did not finish: {e}"))),
    }
}

impl Service {
    /// Admits a write fenced by `fence` (refused: FAILED_PRECONDITION).
    fn admit(&self, fence: Option<pb::Fence>) -> Result<(), Status> {
        let fence = fence.ok_or_else(|| Status::invalid_argument("an extent write names its fence"))?;
        self.1.fences.admit(&fence.volume, fence.revision).map_err(Status::failed_precondition)
    }
}

struct Service(Arc<Replicas>, Arc<ExtentReplicas>);

fn chunk_of(chunk: Option<pb::Chunk>) -> Result<ChunkRef, Status> {
    let chunk = chunk.ok_or_else(|| Status::invalid_argument("the request names no chunk"))?;
    if !ChunkStore::valid_id(&chunk.id) {
        return Err(Status::invalid_argument(format!("chunk id {:?} is not 32 lowercase hex digits", chunk.id)));
    }
    Ok(ChunkRef { id: chunk.id, len: chunk.len, sum: chunk.sum, replicas: Vec::new() })
}

#[tonic::async_trait]
impl Replication for Service {
    async fn write_extent(&self, request: Request<pb::WriteExtentRequest>) -> Result<Response<pb::ExtentResponse>, Status> {
        let r = request.into_inner();
        let id = extent_id(&r.id)?;
        self.admit(r.fence)?;
        let store = self.1.local.clone();
        on_disk(move || store.write(&id, r.offset, &r.data)).await?;
        Ok(Response::new(pb::ExtentResponse {}))
    }

    async fn zero_extent(&self, request: Request<pb::ZeroExtentRequest>) -> Result<Response<pb::ExtentResponse>, Status> {
        let r = request.into_inner();
        let id = extent_id(&r.id)?;
        self.admit(r.fence)?;
        let store = self.1.local.clone();
        on_disk(move || store.zero(&id, r.offset, r.len)).await?;
        Ok(Response::new(pb::ExtentResponse {}))
    }

    async fn read_extent(&self, request: Request<pb::ReadExtentRequest>) -> Result<Response<pb::ReadExtentResponse>, Status> {
        let r = request.into_inner();
        let id = extent_id(&r.id)?;
        let store = self.1.local.clone();
        let data = on_disk(move || store.read(&id, r.offset, r.len)).await?;
        Ok(Response::new(pb::ReadExtentResponse { data }))
    }

    async fn extent_allocation(
        &self,
        request: Request<pb::ReadExtentRequest>,
    ) -> Result<Response<pb::ExtentAllocationResponse>, Status> {
        let r = request.into_inner();
        let id = extent_id(&r.id)?;
        let store = self.1.local.clone();
        let runs = on_disk(move || store.allocation(&id, r.offset, r.len)).await?;
        let runs = runs.into_iter().map(|(blocks, written)| pb::AllocationRun { blocks, written }).collect();
        Ok(Response::new(pb::ExtentAllocationResponse { runs }))
    }

    async fn flush_extents(&self, _request: Request<pb::FlushExtentsRequest>) -> Result<Response<pb::ExtentResponse>, Status> {
        let store = self.1.local.clone();
        on_disk(move || store.flush()).await?;
        Ok(Response::new(pb::ExtentResponse {}))
    }

    async fn delete_extents(&self, request: Request<pb::DeleteChunksRequest>) -> Result<Response<pb::ExtentResponse>, Status> {
        let ids = request.into_inner().ids;
        let ids: Vec<String> = ids.iter().map(|id| extent_id(id)).collect::<Result<_, _>>()?;
        let store = self.1.local.clone();
        on_disk(move || ids.iter().try_for_each(|id| store.delete(id))).await?;
        Ok(Response::new(pb::ExtentResponse {}))
    }

    async fn put_chunk(&self, request: Request<pb::PutChunkRequest>) -> Result<Response<pb::PutChunkResponse>, Status> {
        let request = request.into_inner();
        let chunk = chunk_of(request.chunk)?;
        match self.0.local.put_as(&chunk, request.data).await {
            Ok(()) => Ok(Response::new(pb::PutChunkResponse {})),
            Err(e @ ChunkError::Corrupt { .. }) => Err(Status::data_loss(e.to_string())),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn get_chunk(&self, request: Request<pb::GetChunkRequest>) -> Result<Response<pb::GetChunkResponse>, Status> {
        let chunk = chunk_of(request.into_inner().chunk)?;
        match self.0.local.get(&chunk).await {
            Ok(data) => Ok(Response::new(pb::GetChunkResponse { data })),
            Err(e @ ChunkError::Missing(_)) => Err(Status::not_found(e.to_string())),
            Err(e @ ChunkError::Corrupt { .. }) => {
                // The asker reads another replica; this node mends its own copy from one.
                tracing::warn!(chunk = %chunk.id, error = %e, "a replica asked for is corrupt here; scheduling its repair");
                let node = self.0.node.clone();
                if let Err(hint) = self.0.hint(&node, Hint::put(&chunk)).await {
                    tracing::error!(chunk = %chunk.id, error = %hint, "could not schedule a repair");
                }
                Err(Status::data_loss(e.to_string()))
            }
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn delete_chunks(
        &self,
        request: Request<pb::DeleteChunksRequest>,
    ) -> Result<Response<pb::DeleteChunksResponse>, Status> {
        let ids = request.into_inner().ids;
        if let Some(bad) = ids.iter().find(|id| !ChunkStore::valid_id(id)) {
            return Err(Status::invalid_argument(format!("chunk id {bad:?} is not 32 lowercase hex digits")));
        }
        let chunks: Vec<ChunkRef> =
            ids.into_iter().map(|id| ChunkRef { id, len: 0, sum: String::new(), replicas: Vec::new() }).collect();
        self.0.local.remove(&chunks).await;
        Ok(Response::new(pb::DeleteChunksResponse {}))
    }
}

/// TLS for the replication port: this node's certificate, and the CA peers' must chain to.
pub struct PeerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Serves the replication port until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    replicas: Arc<Replicas>,
    extents: Arc<ExtentReplicas>,
    tls: Option<PeerTls>,
    max_message: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on the replication port {listen} (replication.listen): {e}"))?;
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        let read = |path: &PathBuf| std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?))
            .client_ca_root(Certificate::from_pem(read(&tls.ca)?));
        builder = builder.tls_config(config)?;
    }
    let service = ReplicationServer::new(Service(replicas, extents))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
    tracing::info!(%listen, "serving chunk replication");
    // No Nagle on answers: a small reply held back for the peer's delayed ACK costs a volume
    // write 40 ms.
    let incoming = tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |stream| {
        if let Ok(stream) = &stream {
            let _ = stream.set_nodelay(true);
        }
        stream
    });
    builder.add_service(service).serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned()).await?;
    Ok(())
}
