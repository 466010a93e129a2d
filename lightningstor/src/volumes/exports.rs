//! What this node serves over NBD: an attachment's token is the export name, and names the
//! volume (its head, writable unless the attachment is read only) or one of its snapshots. The
//! catalog is rebuilt from the followed resources on every change, so an attachment deleted is
//! refused at the next open. A writable open takes the volume's writer lease in chainfire
//! (`/photoncloud/lightningstor/writers/<uid>`): a second host is refused while the first holds
//! it, and takes it once the first session closes or its lease expires; a session whose lease
//! was lost has every later write refused (fencing).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use photon_block::nbd::Exports;
use photon_block::{BlockDevice, BlockError, BlockFuture, Extent};
use photon_resource::claim::Holding;
use photon_resource::{Layout, Owner, Resource, Store};

use super::model::{AttachmentSpec, SnapshotSpec, VolumeSpec};
use super::metrics::VolumeMetrics;
use super::service::Volumes;
use super::lock;

/// How long a dead writer holds a volume: its lease's TTL.
pub const WRITER_TTL: Duration = Duration::from_secs(10);

/// One attachment, resolved.
#[derive(Debug, Clone)]
pub struct Target {
    pub owner: Owner,
    pub volume: String,
    /// The attachment's name (its iSCSI CHAP user).
    pub attachment: String,
    /// The iSCSI initiator it admits, if any.
    pub initiator: Option<String>,
    pub uid: String,
    pub spec: VolumeSpec,
    pub host: String,
    pub read_only: bool,
    /// The snapshot's epoch and size, for an attachment of a snapshot.
    pub snapshot: Option<(u32, u64)>,
}

#[derive(Default)]
pub struct Catalog {
    by_token: Mutex<HashMap<String, Target>>,
    /// (iSCSI target name, initiator) → token.
    by_initiator: Mutex<HashMap<(String, String), String>>,
}

/// A volume's iSCSI target name: one per volume.
pub fn iqn(owner: &Owner, volume: &str) -> String {
    format!("{IQN_PREFIX}{}.{}.{volume}", owner.org, owner.project)
}

pub const IQN_PREFIX: &str = "iqn.2026-12.io.photoncloud:";

fn decode<S: serde::de::DeserializeOwned>(value: &[u8]) -> Option<Resource<S>> {
    serde_json::from_slice(value).ok()
}

impl Catalog {
    /// Rebuilds the index from every resource (`items`, by key).
    pub fn rebuild(&self, layout: &Layout, items: &BTreeMap<String, Vec<u8>>) {
        let mut volumes: HashMap<(Owner, String), Resource<VolumeSpec>> = HashMap::new();
        let mut snapshots: HashMap<(Owner, String, String), SnapshotSpec> = HashMap::new();
        let mut attachments = Vec::new();
        for (key, value) in items {
            let Some((owner, path, names)) = layout.parse(key) else { continue };
            match (path.as_slice(), names.as_slice()) {
                (["volumes"], [volume]) => {
                    if let Some(r) = decode::<VolumeSpec>(value) {
                        volumes.insert((owner, volume.to_string()), r);
                    }
                }
                (["volumes", "snapshots"], [volume, snapshot]) => {
                    if let Some(r) = decode::<SnapshotSpec>(value) {
                        snapshots.insert((owner, volume.to_string(), snapshot.to_string()), r.spec);
                    }
                }
                (["volumes", "attachments"], [volume, name]) => {
                    if let Some(r) = decode::<AttachmentSpec>(value) {
                        attachments.push((owner, volume.to_string(), name.to_string(), r.spec));
                    }
                }
                _ => {}
            }
        }
        let mut index = HashMap::new();
        let mut by_initiator = HashMap::new();
        for (owner, volume, name, attachment) in attachments {
            let (Some(token), Some(found)) = (attachment.token.clone(), volumes.get(&(owner.clone(), volume.clone()))) else {
                continue;
            };
            let snapshot = match &attachment.snapshot {
                Some(name) => match snapshots.get(&(owner.clone(), volume.clone(), name.clone())) {
                    Some(SnapshotSpec { epoch: Some(epoch), size_bytes: Some(size), .. }) => Some((*epoch, *size)),
                    _ => continue,
                },
                None => None,
            };
            if let Some(initiator) = &attachment.initiator {
                by_initiator.insert((iqn(&owner, &volume), initiator.clone()), token.clone());
            }
            index.insert(
                token,
                Target {
                    owner: owner.clone(),
                    volume,
                    attachment: name,
                    initiator: attachment.initiator.clone(),
                    uid: found.metadata.uid.clone(),
                    spec: found.spec.clone(),
                    host: attachment.host,
                    read_only: attachment.read_only || snapshot.is_some(),
                    snapshot,
                },
            );
        }
        *lock(&self.by_token) = index;
        *lock(&self.by_initiator) = by_initiator;
    }

    pub fn get(&self, token: &str) -> Option<Target> {
        lock(&self.by_token).get(token).cloned()
    }

    /// The token of the attachment that admits `initiator` to iSCSI target `iqn`.
    pub fn token_for(&self, iqn: &str, initiator: &str) -> Option<String> {
        lock(&self.by_initiator).get(&(iqn.to_string(), initiator.to_string())).cloned()
    }

    /// The targets `initiator` has an attachment to.
    pub fn targets_for(&self, initiator: &str) -> Vec<String> {
        let mut out: Vec<String> = lock(&self.by_initiator).keys().filter(|(_, i)| i == initiator).map(|(t, _)| t.clone()).collect();
        out.sort();
        out.dedup();
        out
    }
}

pub struct VolumeExports {
    pub catalog: Arc<Catalog>,
    pub volumes: Arc<Volumes>,
    pub store: Store,
    /// This node's name (a refused host is told who holds the volume, and where).
    pub node: String,
    /// Writer leases held here, by volume uid: the attachment's token and the lease, shared by
    /// every session of that attachment (an initiator may open several connections).
    pub held: Mutex<HashMap<String, (String, std::sync::Weak<Holding>)>>,
    pub metrics: VolumeMetrics,
}

impl VolumeExports {
    /// What attachment `token` opens, counted for `/metrics`; `None`: no such attachment.
    pub async fn open_token(&self, token: &str) -> Result<Option<Arc<dyn BlockDevice>>, BlockError> {
        let Some(target) = self.catalog.get(token) else { return Ok(None) };
        let device = self.device(token, &target).await?;
        let label = format!("{}/{}/{}", target.owner.org, target.owner.project, target.volume);
        Ok(Some(self.metrics.meter(&label, device)))
    }

    pub fn new(catalog: Arc<Catalog>, volumes: Arc<Volumes>, store: Store, node: String) -> Self {
        Self { catalog, volumes, store, node, held: Mutex::default(), metrics: VolumeMetrics::default() }
    }

    /// What attachment `token` opens: a snapshot's view, the head read only, or the head
    /// fenced by its writer lease.
    async fn device(&self, token: &str, target: &Target) -> Result<Arc<dyn BlockDevice>, BlockError> {
        if let Some((epoch, size)) = target.snapshot {
            return Ok(self.volumes.snapshot(&target.uid, epoch, size).await?);
        }
        let head = self.volumes.head(&target.uid, &target.spec).await?;
        if target.read_only {
            return Ok(Arc::new(ReadOnly(head)));
        }
        let holding = self.lease(token, target).await?;
        head.set_fence(holding.revision);
        Ok(Arc::new(Fenced { inner: head, holding, volume: target.volume.clone() }))
    }

    /// The writer lease of `target` for its attachment `token`: the one this node holds for
    /// it already, or a new one; who holds it when another attachment does.
    async fn lease(&self, token: &str, target: &Target) -> Result<Arc<Holding>, BlockError> {
        if let Some((held_for, holding)) = lock(&self.held).get(&target.uid) {
            if let Some(holding) = holding.upgrade().filter(|h| held_for == token && h.valid()) {
                return Ok(holding);
            }
        }
        let key = format!("{}/writers/{}", super::model::ROOT, target.uid);
        let holder = format!("host {} (attachment {}) through node {}", target.host, target.attachment, self.node);
        // A session of this same attachment here that just ended may still be giving its lease
        // back (the revoke is under way): that one is waited for, briefly.
        let mut tries = 0;
        loop {
            match photon_resource::claim::take(&self.store, &key, &holder, WRITER_TTL).await {
                Ok(Ok(holding)) => {
                    tracing::info!(volume = %target.volume, org = %target.owner.org, project = %target.owner.project, host = %target.host, "volume attached for writing");
                    let holding = Arc::new(holding);
                    lock(&self.held).insert(target.uid.clone(), (token.to_string(), Arc::downgrade(&holding)));
                    return Ok(holding);
                }
                Ok(Err(other)) if other == holder && tries < 30 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(Err(other)) => {
                    return Err(BlockError::ReadOnly(format!(
                        "volume {} is attached for writing by {other}; it is free once that session ends or its lease expires ({}s)",
                        target.volume,
                        WRITER_TTL.as_secs()
                    )))
                }
                Err(e) => return Err(BlockError::Io(format!("chainfire, taking the volume's writer lease: {e}"))),
            }
        }
    }
}

impl Exports for VolumeExports {
    fn open(&self, name: &str) -> BlockFuture<'_, Option<Arc<dyn BlockDevice>>> {
        let name = name.to_string();
        Box::pin(async move { self.open_token(&name).await })
    }

    /// Tokens are secrets: nothing is listed.
    fn list(&self) -> BlockFuture<'_, Vec<String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// A device whose writes are refused.
struct ReadOnly(Arc<dyn BlockDevice>);

/// The writable head while this session holds the writer lease; refused writes once it does not.
struct Fenced {
    inner: Arc<dyn BlockDevice>,
    holding: Arc<Holding>,
    volume: String,
}

impl Fenced {
    fn fenced(&self) -> Result<(), BlockError> {
        if !self.holding.valid() {
            return Err(BlockError::ReadOnly(format!(
                "this session lost volume {}'s writer lease; another host may be writing it",
                self.volume
            )));
        }
        Ok(())
    }
}

fn refused() -> BlockError {
    BlockError::ReadOnly("the attachment is read only".into())
}

impl BlockDevice for ReadOnly {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn block_size(&self) -> u32 {
        self.0.block_size()
    }
    fn read_only(&self) -> bool {
        true
    }
    fn read(&self, offset: u64, len: u32) -> BlockFuture<'_, Bytes> {
        self.0.read(offset, len)
    }
    fn write(&self, _offset: u64, _data: Bytes, _fua: bool) -> BlockFuture<'_, ()> {
        Box::pin(async { Err(refused()) })
    }
    fn flush(&self) -> BlockFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn trim(&self, _offset: u64, _len: u64) -> BlockFuture<'_, ()> {
        Box::pin(async { Err(refused()) })
    }
    fn write_zeroes(&self, _offset: u64, _len: u64, _may_trim: bool, _fua: bool) -> BlockFuture<'_, ()> {
        Box::pin(async { Err(refused()) })
    }
    fn extents(&self, offset: u64, len: u64) -> BlockFuture<'_, Vec<Extent>> {
        self.0.extents(offset, len)
    }
}

impl BlockDevice for Fenced {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn block_size(&self) -> u32 {
        self.inner.block_size()
    }
    fn read(&self, offset: u64, len: u32) -> BlockFuture<'_, Bytes> {
        self.inner.read(offset, len)
    }
    fn write(&self, offset: u64, data: Bytes, fua: bool) -> BlockFuture<'_, ()> {
        Box::pin(async move {
            self.fenced()?;
            self.inner.write(offset, data, fua).await
        })
    }
    fn flush(&self) -> BlockFuture<'_, ()> {
        Box::pin(async move {
            self.fenced()?;
            self.inner.flush().await
        })
    }
    fn trim(&self, offset: u64, len: u64) -> BlockFuture<'_, ()> {
        Box::pin(async move {
            self.fenced()?;
            self.inner.trim(offset, len).await
        })
    }
    fn write_zeroes(&self, offset: u64, len: u64, may_trim: bool, fua: bool) -> BlockFuture<'_, ()> {
        Box::pin(async move {
            self.fenced()?;
            self.inner.write_zeroes(offset, len, may_trim, fua).await
        })
    }
    fn extents(&self, offset: u64, len: u64) -> BlockFuture<'_, Vec<Extent>> {
        self.inner.extents(offset, len)
    }
}
