//! etcd's `KV` service: Range, RangeStream, Put, DeleteRange, Txn, Compact.

use std::pin::Pin;

use photon_api::etcd::etcdserverpb::kv_server::Kv;
use photon_api::etcd::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RangeStreamResponse, TxnRequest, TxnResponse,
};
use prost::Message;
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::{Request, Response, Status};

use super::convert;
use crate::config::LimitsSection;
use crate::error::ChainfireError;
use crate::mvcc::model::{Command, OpResult, Outcome, RangeResult};
use crate::mvcc::read;
use crate::node::Node;

/// Keys per message of a RangeStream.
const STREAM_CHUNK: usize = 1000;

pub struct KvService {
    node: Node,
    limits: LimitsSection,
}

impl KvService {
    pub fn new(node: Node, limits: LimitsSection) -> Self {
        Self { node, limits }
    }

    fn check_size(&self, request: &impl Message) -> Result<(), ChainfireError> {
        if request.encoded_len() > self.limits.max_request_bytes {
            return Err(ChainfireError::RequestTooLarge);
        }
        Ok(())
    }

    async fn read_range(&self, request: RangeRequest) -> Result<(i64, RangeResult), ChainfireError> {
        let serializable = request.serializable;
        let range = convert::range(request)?;
        if !serializable {
            self.node.linearize().await?;
        }
        self.node.read(|reader| Ok((reader.revision()?, read::range(reader, None, &range)?)))
    }

    async fn write(&self, command: Command) -> Result<(i64, OpResult), ChainfireError> {
        match self.node.apply(command).await? {
            (revision, Outcome::Op(result)) => Ok((revision, result)),
            _ => Err(ChainfireError::InvalidArgument("a key-value command produced a lease result".into())),
        }
    }
}

type RangeStream = Pin<Box<dyn Stream<Item = Result<RangeStreamResponse, Status>> + Send>>;

fn unexpected() -> Status {
    Status::internal("the store answered a different operation than was asked")
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let request = request.into_inner();
        self.check_size(&request)?;
        let (revision, result) = self.read_range(request).await?;
        Ok(Response::new(convert::range_response(self.node.header(revision), result)))
    }

    type RangeStreamStream = RangeStream;

    async fn range_stream(&self, request: Request<RangeRequest>) -> Result<Response<RangeStream>, Status> {
        let request = request.into_inner();
        self.check_size(&request)?;
        let (revision, result) = self.read_range(request).await?;
        let full = convert::range_response(self.node.header(revision), result);
        let mut chunks: Vec<RangeResponse> = full
            .kvs
            .chunks(STREAM_CHUNK)
            .map(|kvs| RangeResponse { header: None, kvs: kvs.to_vec(), more: false, count: 0 })
            .collect();
        // header, more and count ride on the final chunk only.
        match chunks.last_mut() {
            Some(last) => {
                last.header = full.header;
                last.more = full.more;
                last.count = full.count;
            }
            None => chunks.push(RangeResponse { kvs: Vec::new(), ..full }),
        }
        let stream =
            tokio_stream::iter(chunks.into_iter().map(|r| Ok(RangeStreamResponse { range_response: Some(r) })));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let request = request.into_inner();
        self.check_size(&request)?;
        let put = convert::put(request)?;
        self.node.ensure_space().await?;
        let (revision, result) = self.write(Command::Put(put)).await?;
        let OpResult::Put { prev } = result else {
            return Err(unexpected());
        };
        Ok(Response::new(convert::put_response(self.node.header(revision), prev)))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let request = request.into_inner();
        self.check_size(&request)?;
        let (revision, result) = self.write(Command::DeleteRange(convert::delete(request)?)).await?;
        let OpResult::DeleteRange { deleted, prevs } = result else {
            return Err(unexpected());
        };
        Ok(Response::new(convert::delete_response(self.node.header(revision), deleted, prevs)))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let request = request.into_inner();
        self.check_size(&request)?;
        let txn = convert::txn(request, self.limits.max_txn_ops)?;
        if crate::mvcc::model::puts_anything(&txn.success) || crate::mvcc::model::puts_anything(&txn.failure) {
            self.node.ensure_space().await?;
        }
        let (revision, result) = self.write(Command::Txn(txn)).await?;
        let OpResult::Txn { succeeded, results } = result else {
            return Err(unexpected());
        };
        Ok(Response::new(convert::txn_response(self.node.header(revision), succeeded, results)))
    }

    async fn compact(&self, request: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        let request = request.into_inner();
        let (revision, _) = self.write(Command::Compact { revision: request.revision }).await?;
        Ok(Response::new(CompactionResponse { header: Some(self.node.header(revision)) }))
    }
}
