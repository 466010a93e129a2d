//! What a store does on its own, on the regions it leads: removing keys whose TTL has passed,
//! and keeping the region map in chainfire current.

use std::collections::HashMap;
use std::time::Duration;

use photon_raft::rocksdb::IteratorMode;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chainfire::Chainfire;
use crate::keys::{self, split_ttl_key, CF_TTL};
use crate::region::app::Command;
use crate::store::{Region, Store};

/// How often the leader looks for expired keys: a key outlives its TTL by at most this (reads
/// already hide it the moment it expires).
const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Most keys one Expire proposal removes.
const SWEEP_BATCH: usize = 512;

/// Starts the TTL sweeper, the split checker, and the loop that keeps this store registered,
/// the region map current, removed replicas dropped, and placement running; all stop at
/// `shutdown`.
pub fn start(
    store: &Store,
    chainfire: &Chainfire,
    api_url: String,
    peer_addr: String,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) {
    let (sweeping, stop) = (store.clone(), shutdown.clone());
    tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(SWEEP_EVERY) => {}
            }
            for region in sweeping.regions().into_iter().filter(Region::is_leader) {
                if let Err(e) = sweep(&sweeping, &region).await {
                    tracing::debug!(region = region.descriptor().id, error = %e, "TTL sweep failed; retrying");
                }
            }
        }
    });

    let (splitting, stop) = (store.clone(), shutdown.clone());
    tasks.spawn(async move {
        let every = Duration::from_millis(splitting.regions_config.check_interval_ms.max(100));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            for region in splitting.regions().into_iter().filter(Region::is_leader) {
                if let Err(e) = split_if_large(&splitting, &region).await {
                    tracing::warn!(region = region.descriptor().id, error = %e, "region split failed; will retry");
                }
            }
        }
    });

    let (publishing, link) = (store.clone(), chainfire.clone());
    tasks.spawn(async move {
        let this_store = json!({ "id": publishing.id, "api_url": api_url, "peer_addr": peer_addr });
        let ttl = publishing.placement.store_ttl_seconds.max(1);
        let mut lease: Option<i64> = None;
        let mut placement = crate::placement::Placement::default();
        let mut published: HashMap<u64, serde_json::Value> = HashMap::new();
        let mut unlisted_since = HashMap::new();
        let every = Duration::from_millis(publishing.placement.interval_ms.clamp(100, (ttl as u64 * 1000) / 3));
        loop {
            // This store's liveness: its entry lives exactly as long as its lease.
            if let Some(id) = lease {
                if matches!(link.keep_alive(id).await, Ok(false)) {
                    tracing::warn!("this store's chainfire lease expired; registering again");
                    lease = None;
                }
            }
            if lease.is_none() {
                if let Ok(id) = link.grant_lease(ttl).await {
                    if link.put(&format!("stores/{}", publishing.id), &this_store, id).await.is_ok() {
                        lease = Some(id);
                    }
                }
            }
            let led: Vec<Region> = publishing.regions().into_iter().filter(Region::is_leader).collect();
            // Another store may have published a region while it led it: forget what we wrote.
            published.retain(|id, _| led.iter().any(|r| r.descriptor().id == *id));
            for region in led {
                let entry = region_entry(&region);
                let id = region.descriptor().id;
                if published.get(&id) != Some(&entry) {
                    match link.put(&format!("regions/{id}"), &entry, 0).await {
                        Ok(()) => {
                            tracing::info!(region = id, "published region to the region map");
                            published.insert(id, entry);
                        }
                        Err(e) => tracing::debug!(region = id, error = %e, "region map update waits for chainfire"),
                    }
                }
            }
            let map = link.list("regions/").await.unwrap_or_default();
            publishing.drop_removed_replicas(&map, &mut unlisted_since).await;
            publishing.adopt_missing_replicas(&map).await;
            if let Some(id) = lease {
                if let Err(e) = placement.round(&publishing, id).await {
                    tracing::warn!(error = %e, "placement round failed; retrying");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
}

/// The region map entry of `region`, as its leader sees it.
pub fn region_entry(region: &Region) -> serde_json::Value {
    let descriptor = region.descriptor();
    let metrics = region.raft.metrics().borrow().clone();
    let peers: Vec<u64> = metrics.membership_config.membership().nodes().map(|(id, _)| *id).collect();
    json!({
        "id": descriptor.id,
        "start_key": hex(&descriptor.start_key),
        "end_key": hex(&descriptor.end_key),
        "epoch": descriptor.epoch,
        "peers": peers,
        "leader": metrics.current_leader,
    })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits `region` at its middle key when it has grown past `[regions]` thresholds.
async fn split_if_large(store: &Store, region: &Region) -> Result<(), crate::error::FlareError> {
    let limits = &store.regions_config;
    if limits.split_keys == 0 && limits.split_bytes == 0 {
        return Ok(());
    }
    let descriptor = region.descriptor();
    let size = store.region_size(&descriptor, limits.split_keys, limits.split_bytes)?;
    let over = (limits.split_keys != 0 && size.keys > limits.split_keys)
        || (limits.split_bytes != 0 && size.bytes > limits.split_bytes);
    if over {
        tracing::info!(
            region = descriptor.id,
            keys = size.keys,
            bytes = size.bytes,
            "region passed its split threshold"
        );
        store.split(descriptor.id, None).await?;
    }
    Ok(())
}

/// Proposes the removal of `region`'s expired keys, oldest first.
async fn sweep(store: &Store, region: &Region) -> Result<(), crate::error::FlareError> {
    let now = keys::now_ms();
    let descriptor = region.descriptor();
    let cf = store
        .db
        .cf_handle(CF_TTL)
        .ok_or_else(|| crate::error::FlareError::Storage("missing column family ttl".into()))?;
    let mut expired = Vec::new();
    for item in store.db.iterator_cf(cf, IteratorMode::Start) {
        let (ttl_key, _) = item.map_err(|e| crate::error::FlareError::Storage(e.to_string()))?;
        let Some((expiry, key)) = split_ttl_key(&ttl_key) else { continue };
        if expiry > now || expired.len() == SWEEP_BATCH {
            break;
        }
        if descriptor.contains(key) {
            expired.push((expiry, key.to_vec()));
        }
    }
    if !expired.is_empty() {
        store.propose(region, Command::Expire { keys: expired }).await?;
    }
    Ok(())
}
