//! Stale replicas of volumes no node writes, repaired anyway. The writer's node repairs the
//! volumes it holds open (`Volumes::run_repairs`); a volume whose last writer went (its node
//! restarted, or the host detached) would keep a returning node's stale copy forever. So every
//! node looks, every `period`, at the volumes it does not hold open: one whose map names a stale
//! replica is taken like a writer would take it — the volume's writer lease, so no session
//! writes meanwhile and no two nodes repair it at once — opened here under that fence, repaired,
//! and given back. A session that asks meanwhile is refused for those seconds, naming the repair.

use std::sync::Arc;
use std::time::Duration;

use photon_block::BlockError;
use photon_resource::{Resource, Store};
use tokio_util::sync::CancellationToken;

use super::engine::VolumeEngine;
use super::exports::WRITER_TTL;
use super::model::{VolumeSpec, ROOT};
use super::service::Volumes;

/// Repairs idle volumes' stale replicas every `period` until `shutdown`, as `node`.
pub async fn run(volumes: Arc<Volumes>, store: Store, node: String, period: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(period) => {}
        }
        if let Err(e) = pass(&volumes, &store, &node).await {
            tracing::debug!(error = %e, "idle volumes' repair pass failed; trying again later");
        }
    }
}

async fn pass(volumes: &Volumes, store: &Store, node: &str) -> Result<(), BlockError> {
    let listed = store
        .list_all::<serde_json::Value>(&format!("{ROOT}/r/"))
        .await
        .map_err(|e| BlockError::Io(format!("listing volumes: {e}")))?;
    let children = ["/attachments/", "/snapshots/"];
    for found in listed.into_iter().filter(|f| f.key.contains("/volumes/") && !children.iter().any(|c| f.key.contains(c))) {
        let Ok(volume) = serde_json::from_value::<Resource<VolumeSpec>>(found.value) else { continue };
        let uid = &volume.metadata.uid;
        if volumes.is_open(uid) || !volumes.has_stale(uid).await? {
            continue;
        }
        let key = format!("{ROOT}/writers/{uid}");
        let holder = format!("the repair of its stale replicas by node {node}");
        let holding = match photon_resource::claim::take(store, &key, &holder, WRITER_TTL).await {
            Ok(Ok(holding)) => holding,
            // Written now: its writer's node repairs it.
            Ok(Err(_)) => continue,
            Err(e) => return Err(BlockError::Io(format!("chainfire, taking a volume's writer lease: {e}"))),
        };
        let spec = &volume.spec;
        let engine = VolumeEngine::open(
            uid,
            spec.size_bytes,
            usize::from(spec.replicas),
            None,
            spec.origin.clone(),
            volumes.map(),
            volumes.replicas(),
        )
        .await?;
        engine.set_fence(holding.revision);
        let repaired = engine.repair().await?;
        if repaired > 0 {
            tracing::info!(volume = %volume.metadata.name, %uid, extents = repaired, "repaired a volume no node was writing");
        }
        drop(holding);
    }
    Ok(())
}
