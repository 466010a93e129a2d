//! Volumes made from an image: an object in one of the project's buckets (a raw disk image),
//! copied into a new volume in the background. One node imports each volume (it holds the
//! import's claim in chainfire); the volume cannot be attached until the copy is done, and an
//! import cut short (its node died) starts over on the next node. Runs of zeroes are not
//! written, so a sparse image makes a thin volume.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flaredb_client::records::Records;
use photon_block::{BlockDevice, BlockError};
use photon_resource::{FieldError, Owner, ResourceError, Store};

use super::engine::VolumeEngine;
use super::extents::EXTENT_BYTES;
use super::model::{Source, VolumeSpec};
use super::service::Volumes;
use crate::meta::{bucket_key, object_key, Bucket, Object};
use crate::replication::Replicas;

/// Where images are read from: the buckets' records and the chunks.
pub struct Images {
    pub records: Records,
    pub chunks: Arc<Replicas>,
}

impl Images {
    /// The current version of `bucket`/`key`, if the bucket is `owner`'s.
    pub async fn find(&self, owner: &Owner, bucket: &str, key: &str) -> Result<Object, ResourceError> {
        let field = |message: String| ResourceError::from(FieldError::new("spec.source.image", message));
        let found = self.records.get::<Bucket>(&bucket_key(bucket)).await.map_err(|e| ResourceError::Unavailable(e.to_string()))?;
        match found {
            Some(b) if b.value.org == owner.org && b.value.project == owner.project => {}
            // Another project's bucket is as good as absent.
            _ => return Err(field(format!("the project has no bucket {bucket}"))),
        }
        let object = self.records.get::<Object>(&object_key(bucket, key)).await.map_err(|e| ResourceError::Unavailable(e.to_string()))?;
        match object {
            Some(o) if !o.value.delete_marker => Ok(o.value),
            _ => Err(field(format!("s3://{bucket}/{key} does not exist"))),
        }
    }

    /// One chunk of the object (its inline data for chunk 0 of a small object).
    async fn chunk(&self, object: &Object, i: usize) -> Result<Bytes, BlockError> {
        match (&object.inline, object.chunks.get(i)) {
            (Some(inline), _) => Ok(inline.clone()),
            (None, Some(chunk)) => self.chunks.get(chunk).await.map_err(|e| BlockError::Io(format!("reading the image: {e}"))),
            (None, None) => Ok(Bytes::new()),
        }
    }
}

/// Copies `data` at `offset` into `engine`, leaving whole 4 KiB blocks of zeroes unwritten.
async fn write_sparse(engine: &VolumeEngine, offset: u64, data: Bytes) -> Result<(), BlockError> {
    let mut start = 0usize;
    while start < data.len() {
        let end = (start + EXTENT_BYTES as usize).min(data.len());
        let piece = data.slice(start..end);
        if piece.iter().any(|b| *b != 0) {
            engine.write(offset + start as u64, piece, false).await?;
        }
        start = end;
    }
    Ok(())
}

impl Volumes {
    /// Imports volume `uid`'s image unless done already or another node imports it.
    pub async fn import(&self, store: &Store, images: &Images, owner: &Owner, uid: &str, spec: &VolumeSpec) -> Result<(), BlockError> {
        let Some(Source::Image { bucket, key }) = &spec.source else { return Ok(()) };
        if self.imported(uid).await? {
            return Ok(());
        }
        let claim = format!("{}/imports/{uid}", super::model::ROOT);
        let holding = match photon_resource::claim::take(store, &claim, "importing", Duration::from_secs(10)).await {
            Ok(Ok(holding)) => holding,
            // Another node imports it; should that node die, its claim expires and the retry here
            // takes over.
            Ok(Err(holder)) => return Err(BlockError::Io(format!("imported elsewhere ({holder})"))),
            Err(e) => return Err(BlockError::Io(format!("chainfire, claiming an import: {e}"))),
        };
        let object = images.find(owner, bucket, key).await.map_err(|e| BlockError::Io(e.to_string()))?;
        tracing::info!(volume = uid, image = %format!("s3://{bucket}/{key}"), bytes = object.size, "importing an image into a new volume");
        let engine = self.importer(uid, spec).await?;
        engine.set_fence(holding.revision);
        let pieces = if object.inline.is_some() { 1 } else { object.chunks.len() };
        let mut at = 0;
        for i in 0..pieces {
            let data = images.chunk(&object, i).await?;
            let len = data.len() as u64;
            write_sparse(&engine, at, data).await?;
            at += len;
        }
        engine.flush().await?;
        engine.finish_import().await?;
        tracing::info!(volume = uid, bytes = object.size, "image imported");
        Ok(())
    }

    /// Imports every image volume `volumes` names that is not imported yet, one at a time; a
    /// failed one (its import claimed by a node that died, a replica down) again 10 s later.
    pub async fn run_imports(
        self: Arc<Self>,
        store: Store,
        images: Arc<Images>,
        mut volumes: tokio::sync::mpsc::UnboundedReceiver<(Owner, String, VolumeSpec)>,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut retry = Vec::new();
        loop {
            let (owner, uid, spec) = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = volumes.recv() => match next { Some(v) => v, None => return },
                _ = tokio::time::sleep(Duration::from_secs(10)), if !retry.is_empty() => retry.remove(0),
            };
            if let Err(e) = self.import(&store, &images, &owner, &uid, &spec).await {
                tracing::warn!(volume = %uid, error = %e, "an image import failed; trying again in 10 s");
                retry.push((owner, uid, spec));
            }
        }
    }
}
