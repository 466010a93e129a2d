//! This member of the chainfire cluster: its RocksDB, its Raft group and peer port, and the
//! two ways requests reach the store: proposals through Raft, reads on a consistent snapshot.

use std::sync::Arc;
use std::time::Duration;

use photon_api::etcd::etcdserverpb::ResponseHeader;
use photon_raft::fault::FaultInjector;
use photon_raft::host::{bootstrap, peer_tls, raft_config, PeerHost};
use photon_raft::network::{ProposeError, Proposer};
use photon_raft::openraft::{BasicNode, Raft, ServerState};
use photon_raft::rocksdb::DB;
use photon_raft::{NodeId, Storage, TypeConfig};
use photon_runtime::{Context, HealthReport, HealthStatus};

use crate::config::ChainfireConfig;
use crate::error::ChainfireError;
use crate::mvcc::keys::ALL_CFS;
use crate::mvcc::model::{Applied, Command, Outcome};
use crate::mvcc::read::Reader;
use crate::mvcc::MvccApp;

pub type ChainRaft = Raft<TypeConfig<MvccApp>>;

/// How long a proposal or a linearizable read may wait for Raft (etcd's default request
/// timeout is 5 s plus an election).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);

/// One Raft member, as [`Node::members`] reports it.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    pub id: NodeId,
    /// host:port of its peer port.
    pub peer_addr: String,
    /// A voter; otherwise a learner.
    pub voter: bool,
    pub leader: bool,
    /// The client URLs it published (empty until it has).
    pub client_urls: Vec<String>,
}

#[derive(Clone)]
pub struct Node {
    pub raft: ChainRaft,
    pub db: Arc<DB>,
    pub id: NodeId,
    pub cluster_id: u64,
    /// The store revision this member has applied, updated after every applied batch.
    pub revisions: tokio::sync::watch::Receiver<i64>,
    proposer: Proposer<MvccApp>,
    /// This member's fault injector (only reachable when `raft.fault_injection` is set).
    pub fault: FaultInjector,
    quota_bytes: u64,
}

fn propose_error(e: ProposeError) -> ChainfireError {
    match e {
        ProposeError::NoLeader => ChainfireError::NoLeader,
        ProposeError::Timeout => ChainfireError::Timeout,
        ProposeError::Stopped => ChainfireError::Stopped,
        ProposeError::Rejected(why) => ChainfireError::InvalidArgument(why),
    }
}

/// FNV-1a, for a stable cluster id derived from the cluster's name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

impl Node {
    /// Opens the store, starts Raft and the peer port, and bootstraps a one-member cluster if
    /// asked to and none exists yet.
    pub async fn start(config: &ChainfireConfig, context: &Context) -> anyhow::Result<Self> {
        let dir = config.server.data_dir.join("raft");
        let peer_ca = config.raft.peer_ca.clone().or_else(|| context.tls.trust.clone());
        let joining = match (&config.raft.join, crate::join::stored_id(&dir)?) {
            (_, Some(stored)) => Some(stored),
            (Some(leader), None) => {
                let record = config.gossip.node_name.as_ref().map(|name| format!("{}{name}", config.gossip.prefix));
                let peer = config.raft.advertised();
                Some(crate::join::add_self(&dir, leader, &peer, record.as_deref(), peer_ca.clone()).await?)
            }
            (None, None) => None,
        };
        let id = joining.unwrap_or(config.raft.node_id);
        let storage = Storage::open(&dir, &ALL_CFS)?;
        let applied_revision = Reader::new(storage.db(), None).revision()?;
        let (revision_tx, revisions) = tokio::sync::watch::channel(applied_revision);
        let (log, sm) = storage.group(0, MvccApp::with_notifier(revision_tx))?;
        let tls = peer_tls(peer_ca.clone(), context.tls.identity.clone());
        let host: PeerHost<MvccApp> =
            PeerHost::start(id, config.raft.listen, tls, context.shutdown.clone(), context.tasks.clone()).await?;
        let raft = Raft::new(
            id,
            raft_config("chainfire", config.raft.timing()).map_err(anyhow::Error::msg)?,
            host.network(0),
            log,
            sm,
        )
        .await?;
        host.add(0, &raft);
        if config.raft.bootstrap && joining.is_none() {
            bootstrap(&raft, config.raft.bootstrap_members().map_err(anyhow::Error::msg)?).await?;
        }
        if let (Some(leader), Some(_), true) = (&config.raft.join, joining, config.raft.promote) {
            let promote = crate::join::promote_when_caught_up(
                raft.clone(),
                id,
                leader.clone(),
                peer_ca.clone(),
                context.shutdown.clone(),
            );
            context.tasks.spawn(promote);
        }
        let proposer = Proposer::new(raft.clone(), host.network(0), REQUEST_TIMEOUT, true);
        Ok(Self {
            raft,
            db: storage.db().clone(),
            id,
            cluster_id: fnv1a(b"chainfire"),
            revisions,
            proposer,
            fault: host.fault().clone(),
            quota_bytes: config.limits.quota_backend_bytes,
        })
    }

    /// Proposes `command` through the leader and returns what applying it answered.
    pub async fn propose(&self, command: Command) -> Result<Applied, ChainfireError> {
        self.proposer.write(command).await.map_err(propose_error)
    }

    /// Proposes `command` and unpacks its outcome: the revision after it, or etcd's refusal.
    pub async fn apply(&self, command: Command) -> Result<(i64, Outcome), ChainfireError> {
        let Applied { revision, result } = self.propose(command).await?;
        match result {
            Some(Ok(outcome)) => Ok((revision, outcome)),
            Some(Err(refusal)) => Err(refusal.into()),
            None => Err(ChainfireError::InvalidArgument("the command produced no result".into())),
        }
    }

    /// Makes a membership change through the leader; `Err(Rejected)` carries openraft's reason.
    pub async fn change_membership(
        &self,
        change: photon_raft::openraft::ChangeMembers<NodeId, BasicNode>,
    ) -> Result<(), ProposeError> {
        self.proposer.change_membership(change).await
    }

    /// Returns once a read of this member's state is linearizable: the leader confirmed its
    /// leadership with a quorum and this member has applied up to the leader's commit point.
    pub async fn linearize(&self) -> Result<(), ChainfireError> {
        self.proposer.linearize().await.map_err(propose_error)
    }

    /// A RocksDB integer property summed over the store's column families.
    pub fn store_property(&self, property: &str) -> i64 {
        crate::mvcc::keys::ALL_CFS
            .iter()
            .filter_map(|name| self.db.cf_handle(name))
            .filter_map(|cf| self.db.property_int_value_cf(cf, property).ok().flatten())
            .sum::<u64>() as i64
    }

    /// Bytes the store takes on disk and in memtables.
    pub fn db_size(&self) -> i64 {
        self.store_property("rocksdb.total-sst-files-size") + self.store_property("rocksdb.cur-size-all-mem-tables")
    }

    /// The Raft members as this member knows them.
    pub fn members(&self) -> Vec<MemberInfo> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| MemberInfo {
                id: *id,
                peer_addr: node.addr.clone(),
                voter: voters.contains(id),
                leader: metrics.current_leader == Some(*id),
                client_urls: self.read(|r| Ok(r.member_client_urls(*id)?)).unwrap_or_default(),
            })
            .collect()
    }

    /// Publishes this member's client URLs through Raft (once the cluster has a leader, and
    /// only if they changed), so MemberList on any member lists them. Runs until done or
    /// shutdown; a failure is retried, since clients that sync endpoints depend on it.
    pub fn publish_client_urls(&self, client_urls: Vec<String>, context: &photon_runtime::Context) {
        let node = self.clone();
        let shutdown = context.shutdown.clone();
        context.tasks.spawn(async move {
            loop {
                let published = node.read(|r| Ok(r.member_client_urls(node.id)?)).unwrap_or_default();
                if published == client_urls {
                    return;
                }
                let command = Command::PublishMember { id: node.id, client_urls: client_urls.clone() };
                match node.apply(command).await {
                    Ok(_) => {
                        tracing::info!(client_urls = ?client_urls, "published this member's client URLs");
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "publishing client URLs failed; retrying"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }

    pub fn quota_bytes(&self) -> u64 {
        self.quota_bytes
    }

    /// Refuses a write that adds data when the store is over its quota, raising the NOSPACE
    /// alarm (replicated, so every member refuses) the first time, as etcd does.
    pub async fn ensure_space(&self) -> Result<(), ChainfireError> {
        if self.quota_bytes == 0 || self.db_size() as u64 <= self.quota_bytes {
            return Ok(());
        }
        if !self.read(|reader| Ok(reader.nospace()?))? {
            tracing::warn!(
                db_size = self.db_size(),
                quota = self.quota_bytes,
                "backend quota exceeded: raising the NOSPACE alarm"
            );
            self.apply(Command::SetNoSpaceAlarm(true)).await?;
        }
        Err(crate::mvcc::model::MvccError::NoSpace.into())
    }

    /// Runs `read` against a consistent snapshot of the store.
    pub fn read<T>(&self, read: impl FnOnce(&Reader<'_>) -> Result<T, ChainfireError>) -> Result<T, ChainfireError> {
        let snapshot = self.db.snapshot();
        read(&Reader::new(&self.db, Some(&snapshot)))
    }

    pub fn header(&self, revision: i64) -> ResponseHeader {
        let term = self.raft.metrics().borrow().current_term;
        ResponseHeader { cluster_id: self.cluster_id, member_id: self.id, revision, raft_term: term }
    }

    /// `/health`: healthy while the cluster has a leader this member knows of.
    pub fn health(&self) -> HealthReport {
        let metrics = self.raft.metrics().borrow().clone();
        let role = match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let cluster_size = metrics.membership_config.membership().voter_ids().count();
        let status = if metrics.current_leader.is_some() && metrics.state != ServerState::Shutdown {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unhealthy
        };
        HealthReport::new(status).with("raft", role).with("cluster_size", cluster_size).with("member_id", self.id)
    }
}
