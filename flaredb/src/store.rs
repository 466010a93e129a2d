//! This store: its RocksDB, the regions it replicates (one Raft group each, all on one peer
//! port), and how a request finds its region and reaches the data: writes as proposals through
//! the region's Raft, reads from the local replica (after a ReadIndex in strong namespaces).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use photon_api::flaredb::v1 as pb;
use photon_raft::host::{bootstrap, peer_tls, raft_config, PeerHost};
use photon_raft::network::Proposer;
use photon_raft::openraft::{Raft, ServerState};
use photon_raft::rocksdb::DB;
use photon_raft::{decode, encode, NodeId, Storage, TypeConfig};
use photon_runtime::Context;
use tokio::sync::{broadcast, mpsc};

use crate::chainfire::Chainfire;
use crate::config::{Consistency, FlaredbConfig, LimitsSection, PlacementSection, RegionsSection};
use crate::error::FlareError;
use crate::keys::{self, ALL_CFS, CF_REGIONS};
use crate::region::app::{Applied, Born, Change, Command, Proposal, RegionApp};
use crate::region::Descriptor;

pub type RegionRaft = Raft<TypeConfig<RegionApp>>;

/// Bounds a proposal or ReadIndex, including waiting out an election.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(7);
/// Watchers that fall this far behind the applied changes are told and disconnected.
const WATCH_BUFFER: usize = 4096;

/// One region this store replicates.
#[derive(Clone)]
pub struct Region {
    pub descriptor: Arc<RwLock<Descriptor>>,
    pub raft: RegionRaft,
    pub(crate) proposer: Proposer<RegionApp>,
}

impl Store {
    /// This store's fault injector, shared by every region (tests only; see `raft.fault_injection`).
    pub fn fault(&self) -> photon_raft::fault::FaultInjector {
        self.raft.host.fault().clone()
    }
}

impl Region {
    pub fn descriptor(&self) -> Descriptor {
        self.descriptor.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().state == ServerState::Leader
    }
}

#[derive(Clone)]
pub struct Store {
    pub id: NodeId,
    pub db: Arc<DB>,
    regions: Arc<RwLock<BTreeMap<u64, Region>>>,
    changes: broadcast::Sender<Arc<Change>>,
    namespaces: Arc<BTreeMap<String, Consistency>>,
    pub limits: LimitsSection,
    pub regions_config: RegionsSection,
    /// The region map's home; also allocates region ids.
    pub chainfire: Chainfire,
    /// CA other stores' API certificates are signed by (store-to-store calls).
    pub api_ca: Option<std::path::PathBuf>,
    pub placement: PlacementSection,
    raft: Arc<RaftParts>,
}

/// What starting a region's Raft group takes.
struct RaftParts {
    storage: Storage,
    host: PeerHost<RegionApp>,
    config: Arc<photon_raft::openraft::Config>,
    births: mpsc::UnboundedSender<Born>,
}

impl Store {
    /// Opens the store, starts the peer port and every region it holds; a store with no regions
    /// yet bootstraps the first one with `raft.initial_peers`. Regions born from splits are
    /// started as their split applies.
    pub async fn start(config: &FlaredbConfig, context: &Context, chainfire: Chainfire) -> anyhow::Result<Self> {
        for name in config.namespaces.keys() {
            if !keys::valid_namespace(name) {
                anyhow::bail!("namespaces.{name}: a namespace name is 1-63 of [a-z0-9_-]");
            }
        }
        let id = config.raft.node_id;
        let storage = Storage::open(&config.server.data_dir.join("raft"), &ALL_CFS)?;
        let peer_ca = config.raft.peer_ca.clone().or_else(|| context.tls.trust.clone());
        let tls = peer_tls(peer_ca, context.tls.identity.clone());
        let host: PeerHost<RegionApp> =
            PeerHost::start(id, config.raft.listen, tls, context.shutdown.clone(), context.tasks.clone()).await?;
        let (changes, _) = broadcast::channel(WATCH_BUFFER);
        let (births, mut born) = mpsc::unbounded_channel();
        let raft_config = raft_config("flaredb", config.raft.timing()).map_err(anyhow::Error::msg)?;
        let store = Self {
            id,
            db: storage.db().clone(),
            regions: Arc::default(),
            changes,
            namespaces: Arc::new(config.namespaces.clone()),
            limits: config.limits.clone(),
            regions_config: config.regions.clone(),
            chainfire,
            api_ca: context.tls.trust.clone(),
            placement: config.placement.clone(),
            raft: Arc::new(RaftParts { storage, host, config: raft_config, births }),
        };

        let mut descriptors = store.stored_descriptors()?;
        if descriptors.is_empty() && !config.raft.bootstrap {
            tracing::info!("joining: no regions yet; placement will add replicas to this store");
        } else if descriptors.is_empty() {
            let first = Descriptor::first();
            store.save_descriptor(&first)?;
            let members = config.raft.initial_members().map_err(anyhow::Error::msg)?;
            store.open_region(first, Some(members)).await?;
        } else {
            descriptors.sort_by_key(|d| d.id);
            for descriptor in descriptors {
                store.open_region(descriptor, None).await?;
            }
        }
        let (starting, shutdown) = (store.clone(), context.shutdown.clone());
        context.tasks.spawn(async move {
            // The store itself holds the sender, so this ends with the process, not the channel.
            while let Some(Born { descriptor, members }) = tokio::select! {
                _ = shutdown.cancelled() => None,
                born = born.recv() => born,
            } {
                let id = descriptor.id;
                match starting.open_region(descriptor, Some(members)).await {
                    Ok(()) => tracing::info!(region = id, "region split off; its raft group started"),
                    Err(e) => tracing::error!(region = id, error = %e, "cannot start a region born from a split"),
                }
            }
        });
        Ok(store)
    }

    /// Starts the Raft group of `descriptor` on this store; `members` initializes a new group
    /// (every replica initializes with the same members, as at bootstrap).
    pub(crate) async fn open_region(
        &self,
        descriptor: Descriptor,
        members: Option<BTreeMap<NodeId, String>>,
    ) -> anyhow::Result<()> {
        let region_id = descriptor.id;
        if self.regions.read().unwrap_or_else(|p| p.into_inner()).contains_key(&region_id) {
            return Ok(());
        }
        let parts = &self.raft;
        let shared = Arc::new(RwLock::new(descriptor));
        let app = RegionApp::new(shared.clone(), self.changes.clone(), parts.births.clone());
        let (log, sm) = parts.storage.group(region_id, app)?;
        let raft = Raft::new(self.id, parts.config.clone(), parts.host.network(region_id), log, sm).await?;
        parts.host.add(region_id, &raft);
        if let Some(members) = members {
            bootstrap(&raft, members).await?;
        }
        let proposer = Proposer::new(raft.clone(), parts.host.network(region_id), REQUEST_TIMEOUT, true);
        let region = Region { descriptor: shared, raft, proposer };
        self.regions.write().unwrap_or_else(|p| p.into_inner()).insert(region_id, region);
        Ok(())
    }

    fn stored_descriptors(&self) -> anyhow::Result<Vec<Descriptor>> {
        let cf = self.db.cf_handle(CF_REGIONS).ok_or_else(|| anyhow::anyhow!("missing column family regions"))?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, photon_raft::rocksdb::IteratorMode::Start) {
            let (_, value) = item?;
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    pub(crate) fn save_descriptor(&self, descriptor: &Descriptor) -> anyhow::Result<()> {
        let cf = self.db.cf_handle(CF_REGIONS).ok_or_else(|| anyhow::anyhow!("missing column family regions"))?;
        self.db.put_cf(cf, descriptor.id.to_be_bytes(), encode(descriptor)?)?;
        Ok(())
    }

    /// Stops routing to region `id`; its group is the caller's to shut down.
    pub(crate) fn forget_region(&self, id: u64) -> Option<Region> {
        let region = self.regions.write().unwrap_or_else(|p| p.into_inner()).remove(&id)?;
        self.raft.host.remove(id);
        Some(region)
    }

    pub fn regions(&self) -> Vec<Region> {
        self.regions.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    pub fn region(&self, id: u64) -> Result<Region, FlareError> {
        self.regions.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned().ok_or(FlareError::NoSuchRegion(id))
    }

    /// The region holding store key `key`.
    pub fn region_for(&self, key: &[u8]) -> Result<Region, FlareError> {
        let regions = self.regions.read().unwrap_or_else(|p| p.into_inner());
        regions
            .values()
            .find(|r| r.descriptor.read().unwrap_or_else(|p| p.into_inner()).contains(key))
            .cloned()
            .ok_or(FlareError::WrongRegion)
    }

    /// Checks the region a client routed (`namespace`, `key`) by against this store's map: a
    /// region that split or moved since answers `StaleEpoch`, one this store does not hold
    /// `WrongRegion`. No hint, no check (the request is routed by key alone).
    pub fn check_route(&self, namespace: &str, key: &[u8], hint: Option<&pb::RegionEpoch>) -> Result<(), FlareError> {
        let Some(hint) = hint else { return Ok(()) };
        let descriptor = self.region_for(&keys::store_key(namespace, key))?.descriptor();
        if descriptor.id != hint.id || descriptor.epoch != hint.epoch {
            return Err(FlareError::StaleEpoch {
                given_id: hint.id,
                given_epoch: hint.epoch,
                id: descriptor.id,
                epoch: descriptor.epoch,
            });
        }
        Ok(())
    }

    /// The declared consistency of `namespace`.
    pub fn consistency(&self, namespace: &str) -> Result<Consistency, FlareError> {
        self.namespaces.get(namespace).copied().ok_or_else(|| {
            let declared = self.namespaces.keys().cloned().collect::<Vec<_>>().join(", ");
            FlareError::UnknownNamespace(namespace.to_string(), declared)
        })
    }

    /// The store key of (`namespace`, `key`), after checking both against the limits.
    pub fn store_key(&self, namespace: &str, key: &[u8]) -> Result<Vec<u8>, FlareError> {
        self.consistency(namespace)?;
        if key.is_empty() {
            return Err(FlareError::EmptyKey);
        }
        if key.len() > self.limits.max_key_bytes {
            return Err(FlareError::KeyTooLarge { len: key.len(), max: self.limits.max_key_bytes });
        }
        Ok(keys::store_key(namespace, key))
    }

    pub fn check_value(&self, value: &[u8]) -> Result<(), FlareError> {
        if value.len() > self.limits.max_value_bytes {
            return Err(FlareError::ValueTooLarge { len: value.len(), max: self.limits.max_value_bytes });
        }
        Ok(())
    }

    /// Proposes `command` to `region` and returns what applying it answered.
    pub async fn propose(&self, region: &Region, command: Command) -> Result<Applied, FlareError> {
        let applied = region.proposer.write(Proposal { now_ms: keys::now_ms(), command }).await?;
        if applied == Applied::OutOfRange {
            // The region changed under the request; the client refreshes its map.
            return Err(FlareError::WrongRegion);
        }
        Ok(applied)
    }

    /// Makes a read of `region` in `namespace` as fresh as the namespace promises: strong
    /// waits for the leader's commit point (ReadIndex), eventual reads the local replica.
    pub async fn read_barrier(&self, region: &Region, namespace: &str) -> Result<(), FlareError> {
        match self.consistency(namespace)? {
            Consistency::Strong => Ok(region.proposer.linearize().await?),
            Consistency::Eventual => Ok(()),
        }
    }

    /// Applied changes, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }
}
