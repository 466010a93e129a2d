//! etcd's `Maintenance` service: Status, Hash, HashKV, Defragment, Snapshot and Alarm (the
//! NOSPACE alarm of the backend quota).
//! MoveLeader and Downgrade are refused as unimplemented: openraft 0.9 has no leader transfer,
//! and chainfire has one on-disk format per release.

use std::pin::Pin;

use photon_api::etcd::etcdserverpb::maintenance_server::Maintenance;
use photon_api::etcd::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse,
};
use photon_raft::openraft::ServerState;
use photon_raft::rocksdb::IteratorMode;
use photon_raft::App;
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::{Request, Response, Status};

use crate::error::ChainfireError;
use crate::mvcc::keys::{self, ALL_CFS, CF_HISTORY};
use crate::mvcc::model::Command;
use crate::mvcc::read::storage;
use crate::mvcc::MvccApp;
use crate::node::Node;

/// The etcd API level chainfire answers as, in Status and Snapshot.
pub const ETCD_API_VERSION: &str = "3.5.0";
/// Bytes per Snapshot stream message.
const SNAPSHOT_CHUNK: usize = 1 << 20;

pub struct MaintenanceService {
    node: Node,
}

impl MaintenanceService {
    pub fn new(node: Node) -> Self {
        Self { node }
    }
}

/// FNV-1a over a sequence of byte strings, length-delimited so boundaries count.
struct Fnv(u32);

impl Fnv {
    fn feed(&mut self, bytes: &[u8]) {
        for b in (bytes.len() as u64).to_be_bytes().iter().chain(bytes) {
            self.0 = (self.0 ^ u32::from(*b)).wrapping_mul(0x0100_0193);
        }
    }
}

/// etcd's snapshot framing, which etcdctl checks on save: the data padded to a multiple of 512
/// bytes, then the SHA-256 of everything before it. Chainfire's own reader ignores the padding.
fn seal(mut data: Vec<u8>) -> Vec<u8> {
    const SECTOR: usize = 512;
    data.resize(data.len().div_ceil(SECTOR) * SECTOR, 0);
    let digest = ring::digest::digest(&ring::digest::SHA256, &data);
    data.extend_from_slice(digest.as_ref());
    data
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        use photon_api::etcd::etcdserverpb::alarm_request::AlarmAction;
        use photon_api::etcd::etcdserverpb::{AlarmMember, AlarmType};
        let request = request.into_inner();
        let action = AlarmAction::try_from(request.action)
            .map_err(|_| Status::invalid_argument("etcdserver: unknown alarm action"))?;
        let nospace = request.alarm == AlarmType::Nospace as i32 || request.alarm == AlarmType::None as i32;
        match action {
            AlarmAction::Get => {}
            AlarmAction::Activate | AlarmAction::Deactivate if nospace => {
                self.node.apply(Command::SetNoSpaceAlarm(action == AlarmAction::Activate)).await?;
            }
            AlarmAction::Activate | AlarmAction::Deactivate => {
                return Err(Status::unimplemented("chainfire: only the NOSPACE alarm exists"));
            }
        }
        let (revision, raised) = self.node.read(|reader| Ok((reader.revision()?, reader.nospace()?)))?;
        let alarms = if raised {
            vec![AlarmMember { member_id: self.node.id, alarm: AlarmType::Nospace as i32 }]
        } else {
            Vec::new()
        };
        Ok(Response::new(AlarmResponse { header: Some(self.node.header(revision)), alarms }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let metrics = self.node.raft.metrics().borrow().clone();
        let revision = *self.node.revisions.borrow();
        let size = self.node.db_size();
        let raised = self.node.read(|reader| Ok(reader.nospace()?))?;
        Ok(Response::new(StatusResponse {
            header: Some(self.node.header(revision)),
            version: ETCD_API_VERSION.into(),
            db_size: size,
            leader: metrics.current_leader.unwrap_or(0),
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map_or(0, |l| l.index),
            errors: if raised { vec![format!("memberID:{} alarm:NOSPACE ", self.node.id)] } else { Vec::new() },
            db_size_in_use: self.node.store_property("rocksdb.estimate-live-data-size"),
            is_learner: metrics.state == ServerState::Learner,
            storage_version: ETCD_API_VERSION.into(),
            db_size_quota: self.node.quota_bytes() as i64,
            downgrade_info: None,
        }))
    }

    async fn defragment(&self, _: Request<DefragmentRequest>) -> Result<Response<DefragmentResponse>, Status> {
        let db = self.node.db.clone();
        tokio::task::spawn_blocking(move || {
            for name in ALL_CFS {
                if let Some(cf) = db.cf_handle(name) {
                    db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
                }
            }
        })
        .await
        .map_err(|e| Status::internal(format!("defragment failed: {e}")))?;
        let revision = *self.node.revisions.borrow();
        Ok(Response::new(DefragmentResponse { header: Some(self.node.header(revision)) }))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let (revision, hash) = self.node.read(|reader| {
            let mut fnv = Fnv(0x811c_9dc5);
            for name in ALL_CFS {
                for item in reader.db().iterator_cf_opt(reader.cf(name)?, reader.options(), IteratorMode::Start) {
                    let (k, v) = item.map_err(storage)?;
                    fnv.feed(&k);
                    fnv.feed(&v);
                }
            }
            Ok((reader.revision()?, fnv.0))
        })?;
        Ok(Response::new(HashResponse { header: Some(self.node.header(revision)), hash }))
    }

    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        let wanted = request.into_inner().revision;
        let (revision, compact, hash_revision, hash) = self.node.read(|reader| {
            let (revision, compact) = (reader.revision()?, reader.compact_revision()?);
            let upto = if wanted <= 0 { revision } else { wanted };
            if upto > revision {
                return Err(crate::mvcc::model::MvccError::FutureRevision.into());
            }
            if upto < compact {
                return Err(crate::mvcc::model::MvccError::Compacted { compact_revision: compact }.into());
            }
            // Every version at or before `upto`, keyed by key and revision: the same on every
            // member that has applied that far, whatever it has applied since.
            let mut fnv = Fnv(0x811c_9dc5);
            for item in reader.db().iterator_cf_opt(reader.cf(CF_HISTORY)?, reader.options(), IteratorMode::Start) {
                let (k, v) = item.map_err(storage)?;
                let (_, rev, _) = keys::split_history_key(&k).ok_or_else(|| storage("malformed history key"))?;
                if rev <= upto {
                    fnv.feed(&k);
                    fnv.feed(&v);
                }
            }
            Ok::<_, ChainfireError>((revision, compact, upto, fnv.0))
        })?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.node.header(revision)),
            hash,
            compact_revision: compact,
            hash_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(&self, _: Request<SnapshotRequest>) -> Result<Response<SnapshotStream>, Status> {
        let db = self.node.db.clone();
        let revision = *self.node.revisions.borrow();
        let data = tokio::task::spawn_blocking(move || MvccApp::default().snapshot(&db))
            .await
            .map_err(|e| Status::internal(format!("snapshot failed: {e}")))?
            .map_err(|e| Status::internal(format!("snapshot failed: {e}")))?;
        let data = seal(data);
        let header = self.node.header(revision);
        let total = data.len();
        let chunks: Vec<Result<SnapshotResponse, Status>> = data
            .chunks(SNAPSHOT_CHUNK)
            .scan(0usize, |sent, chunk| {
                *sent += chunk.len();
                Some(Ok(SnapshotResponse {
                    header: Some(header),
                    remaining_bytes: (total - *sent) as u64,
                    blob: chunk.to_vec(),
                    version: ETCD_API_VERSION.into(),
                }))
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn move_leader(&self, _: Request<MoveLeaderRequest>) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(Status::unimplemented("chainfire: leader transfer is not supported yet"))
    }

    async fn downgrade(&self, _: Request<DowngradeRequest>) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented("chainfire: cluster downgrade is not supported"))
    }
}
