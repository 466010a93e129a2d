//! Moving replicas between stores, the mechanics placement drives: starting an empty replica
//! on a store, adding it to a region (it catches up by snapshot, then votes), removing one,
//! and a store dropping the replicas it is no longer a member of.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use photon_api::flaredb::v1 as pb;
use photon_api::flaredb::v1::regions_client::RegionsClient;
use photon_raft::openraft::{BasicNode, ChangeMembers};
use photon_raft::rocksdb::{Direction, IteratorMode, WriteBatch};

use crate::error::FlareError;
use crate::keys::{CF_DATA, CF_REGIONS};
use crate::region::Descriptor;
use crate::store::{Region, Store};

/// Bound on a new replica catching up before it is made a voter.
const CATCH_UP: Duration = Duration::from_secs(30);
/// How long the region map must list a region without this store before its replica here goes.
const REMOVED_GRACE: Duration = Duration::from_secs(10);

fn raft_failure(e: impl std::fmt::Display) -> FlareError {
    FlareError::Unavailable(format!("replica change failed: {e}"))
}

impl Store {
    /// Starts an empty replica of `descriptor` here (no-op if it exists), clearing any stale
    /// data in its range first; the region's leader fills it with a snapshot.
    pub async fn open_replica(&self, descriptor: Descriptor) -> Result<(), FlareError> {
        if self.region(descriptor.id).is_ok() {
            return Ok(());
        }
        if let Some(overlap) = self.regions().iter().map(Region::descriptor).find(|d| overlaps(d, &descriptor)) {
            return Err(FlareError::InvalidArgument(format!(
                "region {} overlaps region {} that this store already holds",
                descriptor.id, overlap.id
            )));
        }
        self.clear_range(&descriptor)?;
        self.save_descriptor(&descriptor).map_err(|e| FlareError::Storage(e.to_string()))?;
        self.open_region(descriptor.clone(), None).await.map_err(|e| FlareError::Storage(e.to_string()))?;
        tracing::info!(region = descriptor.id, "opened an empty replica; waiting for the leader's snapshot");
        Ok(())
    }

    /// On the region's leader: makes store `store_id` a voting replica of `region_id`.
    pub async fn add_replica(&self, request: &pb::AddReplicaRequest) -> Result<(), FlareError> {
        let region = self.leader_region(request.region_id)?;
        let descriptor = region.descriptor();
        let options = photon_client::ChannelOptions { ca: self.api_ca.clone(), ..Default::default() };
        let channel = photon_client::lazy_channel(&request.api_url, &options)
            .map_err(|e| FlareError::InvalidArgument(format!("api_url {}: {e}", request.api_url)))?;
        let open = pb::OpenReplicaRequest {
            region: Some(pb::Region {
                id: descriptor.id,
                start_key: descriptor.start_key.clone(),
                end_key: descriptor.end_key.clone(),
                epoch: descriptor.epoch,
                ..Default::default()
            }),
        };
        RegionsClient::new(channel).open_replica(open).await.map_err(|s| raft_failure(s.message()))?;
        reseed(&region).await?;
        let node = BasicNode { addr: request.peer_addr.clone() };
        tokio::time::timeout(CATCH_UP, region.raft.add_learner(request.store_id, node, true))
            .await
            .map_err(|_| {
                FlareError::Unavailable(format!("store {} did not catch up within {CATCH_UP:?}", request.store_id))
            })?
            .map_err(raft_failure)?;
        let voters = ChangeMembers::AddVoterIds(BTreeSet::from([request.store_id]));
        region.raft.change_membership(voters, false).await.map_err(raft_failure)?;
        tracing::info!(region = request.region_id, store = request.store_id, "added a replica");
        Ok(())
    }

    /// On the region's leader: removes store `store_id` from `region_id`.
    pub async fn remove_replica(&self, region_id: u64, store_id: u64) -> Result<(), FlareError> {
        let region = self.leader_region(region_id)?;
        let change = ChangeMembers::RemoveVoters(BTreeSet::from([store_id]));
        region.raft.change_membership(change, false).await.map_err(raft_failure)?;
        tracing::info!(region = region_id, store = store_id, "removed a replica");
        Ok(())
    }

    /// Makes this store's replica of `region_id` stand for election, so leadership can leave a
    /// store placement wants to take replicas from (openraft 0.9 has no leader transfer).
    ///
    /// A forced election skips the timers that make the leader's lease reads safe, so the
    /// current leader is first asked to suspend them (`YieldLeadership`), and the election
    /// must start well inside that suspension.
    pub async fn campaign(&self, region_id: u64) -> Result<(), FlareError> {
        let region = self.region(region_id)?;
        let leader = region.raft.metrics().borrow().current_leader;
        let leader = match leader {
            Some(leader) if leader == self.id => return Ok(()),
            Some(leader) => leader,
            None => {
                return Err(FlareError::Unavailable(format!(
                    "region {region_id} has no leader to take over from; an election is under way"
                )))
            }
        };
        let url = self.store_api_url(leader).await.ok_or_else(|| {
            FlareError::Unavailable(format!("the API URL of store {leader}, region {region_id}'s leader, is unknown"))
        })?;
        let asked = Instant::now();
        let options = photon_client::ChannelOptions { ca: self.api_ca.clone(), ..Default::default() };
        let channel = photon_client::lazy_channel(&url, &options)
            .map_err(|e| FlareError::Unavailable(format!("store {leader} at {url}: {e}")))?;
        RegionsClient::new(channel).yield_leadership(pb::CampaignRequest { region_id }).await.map_err(|e| {
            FlareError::Unavailable(format!("store {leader} did not yield region {region_id}: {}", e.message()))
        })?;
        let deadline = Duration::from_millis(region.raft.config().election_timeout_min);
        if asked.elapsed() >= deadline {
            return Err(FlareError::Unavailable(format!(
                "store {leader} took {:?} to yield region {region_id}, too long to stand for election safely",
                asked.elapsed()
            )));
        }
        region.raft.trigger().elect().await.map_err(raft_failure)?;
        tracing::info!(region = region_id, from = leader, "standing for election");
        Ok(())
    }

    /// On a region's leader, before another replica campaigns: stops lease reads long enough
    /// for that election to settle (reads confirm leadership with a quorum meanwhile).
    pub fn yield_leadership(&self, region_id: u64) -> Result<(), FlareError> {
        let period = self.region(region_id)?.proposer.suspend_lease();
        tracing::info!(
            region = region_id,
            suspended_ms = period.as_millis() as u64,
            "lease reads suspended for a campaign"
        );
        Ok(())
    }

    /// Another store's API URL, as its registration in chainfire gives it.
    async fn store_api_url(&self, store: u64) -> Option<String> {
        let stores = self.chainfire.list("stores/").await.ok()?;
        stores
            .iter()
            .find(|(_, s)| s["id"].as_u64() == Some(store))
            .and_then(|(_, s)| s["api_url"].as_str().map(String::from))
    }

    /// On the region's leader: makes replicas that start empty catch up by snapshot (see
    /// `reseed`).
    pub async fn reseed(&self, region_id: u64) -> Result<(), FlareError> {
        reseed(&self.leader_region(region_id)?).await
    }

    /// Opens the replicas the region map says this store holds but it does not (it missed the
    /// split that created them, having caught up on the parent by snapshot), and has their
    /// leaders send it a snapshot.
    pub async fn adopt_missing_replicas(&self, map: &[(String, serde_json::Value)]) {
        for (_, entry) in map {
            let (Some(id), Some(leader)) = (entry["id"].as_u64(), entry["leader"].as_u64()) else { continue };
            let listed = entry["peers"].as_array().is_some_and(|p| p.iter().any(|p| p.as_u64() == Some(self.id)));
            if !listed || leader == self.id || self.region(id).is_ok() {
                continue;
            }
            let (Some(start), Some(end), Some(epoch)) =
                (unhex(&entry["start_key"]), unhex(&entry["end_key"]), entry["epoch"].as_u64())
            else {
                continue;
            };
            let descriptor = Descriptor { id, start_key: start, end_key: end, epoch };
            // Overlap means this store has not caught up on the parent yet: try again later.
            if self.open_replica(descriptor).await.is_err() {
                continue;
            }
            let Some(url) = self.store_api_url(leader).await else { continue };
            let options = photon_client::ChannelOptions { ca: self.api_ca.clone(), ..Default::default() };
            if let Ok(channel) = photon_client::lazy_channel(&url, &options) {
                match RegionsClient::new(channel).reseed(pb::ReseedRequest { region_id: id }).await {
                    Ok(_) => {
                        tracing::info!(region = id, "adopted a replica this store missed; the leader sends a snapshot")
                    }
                    Err(e) => tracing::warn!(region = id, error = %e.message(), "adopting a missed replica waits"),
                }
            }
        }
    }

    fn leader_region(&self, region_id: u64) -> Result<Region, FlareError> {
        let region = self.region(region_id)?;
        if !region.is_leader() {
            return Err(FlareError::Unavailable(format!("this store does not lead region {region_id}")));
        }
        Ok(region)
    }

    /// Drops the replicas this store is no longer a member of: stops the group and deletes its
    /// data and descriptor. A removed replica rarely hears of its own removal (the leader stops
    /// talking to it), and a replica being added installs a snapshot whose membership does not
    /// list it yet, so local membership cannot decide; the region map does: a region whose
    /// leader has listed it without this store for `REMOVED_GRACE` is gone here. (The grace
    /// covers a replica being added, which exists here before the map lists it.)
    pub async fn drop_removed_replicas(
        &self,
        map: &[(String, serde_json::Value)],
        unlisted_since: &mut HashMap<u64, Instant>,
    ) {
        let now = Instant::now();
        for region in self.regions() {
            let id = region.descriptor().id;
            let unlisted = map.iter().any(|(_, entry)| {
                entry["id"].as_u64() == Some(id)
                    && entry["leader"].as_u64().is_some_and(|l| l != self.id)
                    && entry["peers"].as_array().is_some_and(|peers| !peers.iter().any(|p| p.as_u64() == Some(self.id)))
            });
            let since = if unlisted {
                *unlisted_since.entry(id).or_insert(now)
            } else {
                unlisted_since.remove(&id);
                now
            };
            if !unlisted || now.duration_since(since) < REMOVED_GRACE {
                continue;
            }
            let descriptor = region.descriptor();
            if let Err(e) = self.close_region(&descriptor).await {
                tracing::warn!(region = descriptor.id, error = %e, "cannot drop a removed replica");
                continue;
            }
            unlisted_since.remove(&descriptor.id);
            tracing::info!(region = descriptor.id, "dropped this store's replica: it is no longer a member");
        }
    }

    async fn close_region(&self, descriptor: &Descriptor) -> Result<(), FlareError> {
        if let Some(region) = self.forget_region(descriptor.id) {
            let _ = region.raft.shutdown().await;
        }
        self.clear_range(descriptor)?;
        let cf =
            self.db.cf_handle(CF_REGIONS).ok_or_else(|| FlareError::Storage("missing column family regions".into()))?;
        self.db.delete_cf(cf, descriptor.id.to_be_bytes()).map_err(|e| FlareError::Storage(e.to_string()))
    }

    /// Deletes every record in the descriptor's range.
    fn clear_range(&self, descriptor: &Descriptor) -> Result<(), FlareError> {
        let cf = self.db.cf_handle(CF_DATA).ok_or_else(|| FlareError::Storage("missing column family data".into()))?;
        let mut batch = WriteBatch::default();
        for item in self.db.iterator_cf(cf, IteratorMode::From(&descriptor.start_key, Direction::Forward)) {
            let (key, _) = item.map_err(|e| FlareError::Storage(e.to_string()))?;
            if !descriptor.contains(&key) {
                break;
            }
            batch.delete_cf(cf, key);
        }
        self.db.write(batch).map_err(|e| FlareError::Storage(e.to_string()))
    }
}

fn overlaps(a: &Descriptor, b: &Descriptor) -> bool {
    let a_before_b_end = b.end_key.is_empty() || a.start_key < b.end_key;
    let b_before_a_end = a.end_key.is_empty() || b.start_key < a.end_key;
    a_before_b_end && b_before_a_end
}

/// Takes a snapshot of `region` and drops the log it covers, so a replica that starts empty
/// catches up by snapshot: a region born from a split has data older than its log.
async fn reseed(region: &Region) -> Result<(), FlareError> {
    let applied = region.raft.metrics().borrow().last_applied.map_or(0, |l| l.index);
    region.raft.trigger().snapshot().await.map_err(raft_failure)?;
    region
        .raft
        .wait(Some(CATCH_UP))
        .metrics(|m| m.snapshot.is_some_and(|s| s.index >= applied), "snapshot for a new replica")
        .await
        .map_err(raft_failure)?;
    region.raft.trigger().purge_log(applied).await.map_err(raft_failure)
}

fn unhex(value: &serde_json::Value) -> Option<Vec<u8>> {
    let text = value.as_str()?;
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}
