//! This node's volumes at work: the engines open here (one per volume head, shared by every
//! session that serves it), and what creating a snapshot or a clone, or deleting one, does to
//! the data (photon-resource assigners run inside the API's create and delete).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use photon_block::{BlockDevice, BlockError};
use photon_resource::{Assign, Assigning, FieldError, Placing, ResourceError};

use super::engine::VolumeEngine;
use super::replicas::ExtentReplicas;
use super::map::{MapStore, Parent};
use super::model::{Attachment, AttachmentSpec, Snapshot, SnapshotSpec, Source, Volume, VolumeSpec};
use super::lock;

pub struct Volumes {
    map: Arc<dyn MapStore>,
    replicas: Arc<ExtentReplicas>,
    /// Open heads by volume uid.
    heads: Mutex<HashMap<String, Arc<VolumeEngine>>>,
    /// Where images come from (none: volumes from images are refused).
    images: Option<Arc<super::images::Images>>,
}

fn unavailable(e: BlockError) -> ResourceError {
    ResourceError::Unavailable(format!("the volume's data: {e}"))
}

impl Volumes {
    pub fn new(map: Arc<dyn MapStore>, replicas: Arc<ExtentReplicas>, images: Option<Arc<super::images::Images>>) -> Arc<Self> {
        Arc::new(Self { map, replicas, heads: Mutex::default(), images })
    }

    /// A volume grew: its open head (if this node has one) serves the new size at once.
    pub fn resized(&self, uid: &str, size: u64) {
        if let Some(engine) = lock(&self.heads).get(uid) {
            if engine.size() < size {
                tracing::info!(volume = uid, size, "volume grown");
                engine.set_size(size);
            }
        }
    }

    /// Whether volume `uid`'s image (if any) is in.
    pub async fn imported(&self, uid: &str) -> Result<bool, BlockError> {
        Ok(self.map.load(uid).await?.0.is_some_and(|head| !head.importing))
    }

    /// The head an import writes through: made (marked importing) if there is none yet.
    pub async fn importer(&self, uid: &str, spec: &VolumeSpec) -> Result<Arc<VolumeEngine>, BlockError> {
        if self.map.load(uid).await?.0.is_none() {
            self.map.put_head(uid, &super::map::Head { epoch: 1, parent: None, importing: true }).await?;
        }
        let copies = usize::from(spec.replicas);
        VolumeEngine::open(uid, spec.size_bytes, copies, None, None, self.map.clone(), self.replicas.clone()).await
    }

    /// Repairs the stale replicas of every volume this node writes, every `period`, until
    /// `shutdown` (a node that was down is copied back once it answers).
    pub async fn run_repairs(self: Arc<Self>, period: std::time::Duration, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let heads: Vec<Arc<VolumeEngine>> = lock(&self.heads).values().cloned().collect();
            for head in heads {
                if let Err(e) = head.repair().await {
                    tracing::debug!(volume = %head.uid(), error = %e, "repair pass failed; trying again later");
                }
            }
        }
    }

    /// Frees a deleted volume's data: its extents on every replica, then its map; the engine
    /// of its head, if open here, is dropped. Safe to run on several nodes at once.
    pub async fn forget(&self, uid: &str) -> Result<(), BlockError> {
        lock(&self.heads).remove(uid);
        let (_, versions) = self.map.load(uid).await?;
        let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
        for extent in versions.values().flat_map(|v| v.values()) {
            for node in self.replicas.nodes(extent) {
                by_node.entry(node).or_default().push(extent.id.clone());
            }
        }
        let count: usize = versions.values().map(|v| v.len()).sum();
        for (node, ids) in by_node {
            self.replicas
                .delete_on(&node, ids)
                .await
                .map_err(|e| BlockError::Io(format!("removing a deleted volume's extents from {node}: {e:?}")))?;
        }
        self.map.forget(uid).await?;
        tracing::info!(volume = uid, extents = count, "a deleted volume's data freed");
        Ok(())
    }

    /// Whether any volume resource (in any project) still has `uid`: read afresh from chainfire
    /// before a volume's data is freed, whatever a copy said.
    async fn still_exists(store: &photon_resource::Store, uid: &str) -> Result<bool, ResourceError> {
        let all = store.list_all::<serde_json::Value>(&format!("{}/r/", super::model::ROOT)).await?;
        Ok(all.iter().any(|v| v.value["metadata"]["uid"].as_str() == Some(uid) && v.key.contains("/volumes/")))
    }

    /// Frees the data of each volume uid `deleted` sends (once chainfire confirms it is gone),
    /// retrying one that fails (a replica down) a minute later, until `shutdown`.
    pub async fn run_forgetting(
        self: Arc<Self>,
        store: photon_resource::Store,
        mut deleted: tokio::sync::mpsc::UnboundedReceiver<String>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut retry: Vec<String> = Vec::new();
        loop {
            let uid = tokio::select! {
                _ = shutdown.cancelled() => return,
                uid = deleted.recv() => match uid { Some(uid) => uid, None => return },
                _ = tokio::time::sleep(std::time::Duration::from_secs(60)), if !retry.is_empty() => retry.remove(0),
            };
            match Self::still_exists(&store, &uid).await {
                Ok(false) => {}
                Ok(true) => continue,
                Err(e) => {
                    tracing::warn!(volume = %uid, error = %e, "cannot confirm a volume was deleted; trying again in a minute");
                    retry.push(uid);
                    continue;
                }
            }
            if let Err(e) = self.forget(&uid).await {
                tracing::warn!(volume = %uid, error = %e, "a deleted volume's data could not be freed yet; trying again in a minute");
                retry.push(uid);
            }
        }
    }

    /// Whether this node holds volume `uid`'s head open (its writer's node repairs it).
    pub fn is_open(&self, uid: &str) -> bool {
        lock(&self.heads).contains_key(uid)
    }

    /// Whether volume `uid`'s map names a stale replica of any extent.
    pub async fn has_stale(&self, uid: &str) -> Result<bool, BlockError> {
        let (_, versions) = self.map.load(uid).await?;
        Ok(versions.values().flat_map(|v| v.values()).any(|extent| !extent.stale.is_empty()))
    }

    pub fn map(&self) -> Arc<dyn MapStore> {
        self.map.clone()
    }

    pub fn replicas(&self) -> Arc<ExtentReplicas> {
        self.replicas.clone()
    }

    /// The writable head of volume `uid` at `size` bytes (grown if the volume grew since).
    pub async fn head(&self, uid: &str, spec: &VolumeSpec) -> Result<Arc<VolumeEngine>, BlockError> {
        if let Some(engine) = lock(&self.heads).get(uid).cloned() {
            engine.set_size(spec.size_bytes);
            return Ok(engine);
        }
        if let Some(Source::Image { bucket, key }) = &spec.source {
            if !self.imported(uid).await? {
                return Err(BlockError::Io(format!("the volume is still being made from s3://{bucket}/{key}; try again shortly")));
            }
        }
        let copies = usize::from(spec.replicas);
        let engine =
            VolumeEngine::open(uid, spec.size_bytes, copies, None, spec.origin.clone(), self.map.clone(), self.replicas.clone())
                .await?;
        // Two sessions opening at once: the first one in is the one kept.
        Ok(lock(&self.heads).entry(uid.to_string()).or_insert(engine).clone())
    }

    /// Snapshot `epoch` of volume `uid`, read only, `size` bytes.
    pub async fn snapshot(&self, uid: &str, epoch: u32, size: u64) -> Result<Arc<VolumeEngine>, BlockError> {
        VolumeEngine::open(uid, size, 1, Some(epoch), None, self.map.clone(), self.replicas.clone()).await
    }
}

/// A clone names a snapshot of its project: its data is read through that snapshot's epoch.
impl Assign<Volume> for Arc<Volumes> {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut VolumeSpec) -> Assigning<'a> {
        Box::pin(async move {
            spec.origin = None;
            if let Some(Source::Image { bucket, key }) = &spec.source {
                let Some(images) = &self.images else {
                    return Err(ResourceError::Precondition("this node cannot read images".into()));
                };
                let object = images.find(at.owner, bucket, key).await?;
                if object.size > spec.size_bytes {
                    return Err(FieldError::new(
                        "spec.size_bytes",
                        format!("{} is smaller than s3://{bucket}/{key} ({} bytes)", spec.size_bytes, object.size),
                    )
                    .into());
                }
                return Ok(());
            }
            let Some(Source::Snapshot { volume, snapshot }) = spec.source.clone() else { return Ok(()) };
            let not_found = |e: ResourceError| match e {
                ResourceError::NotFound { .. } => {
                    ResourceError::from(FieldError::new("spec.source.snapshot", format!("{volume}/{snapshot} does not exist")))
                }
                other => other,
            };
            let source = at.resources.get::<Volume>(at.owner, &[], &volume).await.map_err(not_found)?;
            let taken = at.resources.get::<Snapshot>(at.owner, std::slice::from_ref(&volume), &snapshot).await.map_err(not_found)?;
            let (Some(epoch), Some(size)) = (taken.spec.epoch, taken.spec.size_bytes) else {
                return Err(ResourceError::Precondition(format!("snapshot {volume}/{snapshot} was never taken")));
            };
            if spec.size_bytes < size {
                return Err(FieldError::new(
                    "spec.size_bytes",
                    format!("{} is smaller than snapshot {volume}/{snapshot} ({size} bytes)", spec.size_bytes),
                )
                .into());
            }
            spec.origin = Some(Parent { uid: source.metadata.uid, epoch });
            Ok(())
        })
    }
}

/// Taking a snapshot: the volume's head moves to its next epoch, between two writes.
impl Assign<Snapshot> for Arc<Volumes> {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut SnapshotSpec) -> Assigning<'a> {
        Box::pin(async move {
            let name = at.parents.first().cloned().unwrap_or_default();
            let volume = at.resources.get::<Volume>(at.owner, &[], &name).await?;
            let engine = self.head(&volume.metadata.uid, &volume.spec).await.map_err(unavailable)?;
            spec.epoch = Some(engine.snapshot().await.map_err(unavailable)?);
            spec.size_bytes = Some(volume.spec.size_bytes);
            Ok(())
        })
    }

    /// A snapshot a clone reads through stays until the clone is gone.
    fn deleting<'a>(&'a self, at: Placing<'a>, name: &'a str, spec: &'a SnapshotSpec) -> Assigning<'a> {
        Box::pin(async move {
            let volume_name = at.parents.first().cloned().unwrap_or_default();
            let volume = at.resources.get::<Volume>(at.owner, &[], &volume_name).await?;
            let clones = at.resources.list_all::<Volume>(at.owner, &[]).await?;
            let origin = Parent { uid: volume.metadata.uid, epoch: spec.epoch.unwrap_or(0) };
            if let Some(clone) = clones.iter().find(|c| c.spec.origin.as_ref() == Some(&origin)) {
                return Err(ResourceError::Precondition(format!(
                    "snapshot {volume_name}/{name} is the source of volume {}; delete that first",
                    clone.metadata.name
                )));
            }
            Ok(())
        })
    }
}

/// An attachment gets its token (the NBD export name), and a snapshot it names must exist.
impl Assign<Attachment> for Arc<Volumes> {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut AttachmentSpec) -> Assigning<'a> {
        Box::pin(async move {
            spec.token = Some(format!("{}{}", super::extents::new_id(), super::extents::new_id()));
            if let Some(snapshot) = &spec.snapshot {
                match at.resources.get::<Snapshot>(at.owner, at.parents, snapshot).await {
                    Ok(_) => {}
                    Err(ResourceError::NotFound { .. }) => {
                        return Err(FieldError::new("spec.snapshot", format!("the volume has no snapshot {snapshot}")).into())
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }
}
