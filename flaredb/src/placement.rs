//! Placement: one store at a time, the holder of `placement/leader` in chainfire (attached to
//! its lease, so it passes on when the store dies), decides where replicas live. Each round
//! (every `placement.interval_ms`) it makes at most one change, in this order:
//!
//! 1. a replica on a store gone for `replace_after_ms` is removed from its region;
//! 2. a region with fewer live replicas than `min(replicas, live stores)` gets one on the live
//!    store holding the fewest replicas;
//! 3. a region with more replicas than that loses the one on the most loaded store (never the
//!    leader's);
//! 4. if a store holds more than one replica above the least loaded store, a region it holds
//!    (and does not lead) gets a replica on the least loaded store; rule 3 then trims the
//!    region back, from its most loaded non-leader.
//!
//! So every region converges to its replica count and every store to within one replica of
//! its fair share (total replicas / live stores).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use photon_api::flaredb::v1 as pb;
use photon_api::flaredb::v1::regions_client::RegionsClient;
use serde_json::json;

use crate::store::Store;

/// A region as the region map says: its replicas and leader.
struct Entry {
    id: u64,
    peers: Vec<u64>,
    leader: Option<u64>,
}

/// A live store, from its `stores/<id>` entry.
struct Live {
    api_url: String,
    peer_addr: String,
}

#[derive(Default)]
pub struct Placement {
    down_since: HashMap<u64, Instant>,
}

impl Placement {
    /// One round, if this store holds (or wins) the placement leadership under `lease`.
    pub async fn round(&mut self, store: &Store, lease: i64) -> Result<(), String> {
        let link = &store.chainfire;
        let me = json!(store.id);
        let leading = link.create("placement/leader", &me, lease).await?
            || link.list("placement/").await?.iter().any(|(key, holder)| key == "leader" && *holder == me);
        if !leading {
            self.down_since.clear();
            return Ok(());
        }
        let live: HashMap<u64, Live> = link
            .list("stores/")
            .await?
            .into_iter()
            .filter_map(|(_, v)| {
                let id = v["id"].as_u64()?;
                Some((id, Live { api_url: v["api_url"].as_str()?.into(), peer_addr: v["peer_addr"].as_str()?.into() }))
            })
            .collect();
        let regions: Vec<Entry> = link
            .list("regions/")
            .await?
            .into_iter()
            .filter_map(|(_, v)| {
                let peers = v["peers"].as_array()?.iter().filter_map(|p| p.as_u64()).collect();
                Some(Entry { id: v["id"].as_u64()?, peers, leader: v["leader"].as_u64() })
            })
            .collect();
        let now = Instant::now();
        self.down_since.retain(|id, _| !live.contains_key(id));
        let mut load: HashMap<u64, usize> = live.keys().map(|id| (*id, 0)).collect();
        for region in &regions {
            for peer in &region.peers {
                if let Some(count) = load.get_mut(peer) {
                    *count += 1;
                }
            }
        }
        let target = store.placement.replicas.min(live.len()).max(1);
        let replace_after = Duration::from_millis(store.placement.replace_after_ms);
        let least_loaded = |exclude: &[u64]| {
            load.iter().filter(|(id, _)| !exclude.contains(id)).min_by_key(|(id, n)| (**n, **id)).map(|(id, _)| *id)
        };

        for region in &regions {
            let Some(leader) = region.leader.and_then(|l| live.get(&l).map(|s| (l, s))) else { continue };
            let gone: Vec<u64> = region.peers.iter().copied().filter(|p| !live.contains_key(p)).collect();
            for peer in &gone {
                let since = *self.down_since.entry(*peer).or_insert(now);
                if now.duration_since(since) >= replace_after {
                    tracing::info!(
                        region = region.id,
                        store = peer,
                        "placement: replacing the replica of a lost store"
                    );
                    return remove(store, &leader.1.api_url, region.id, *peer).await;
                }
            }
            let live_peers = region.peers.len() - gone.len();
            if live_peers < target {
                if let Some(to) = least_loaded(&region.peers) {
                    tracing::info!(region = region.id, store = to, "placement: adding a replica");
                    return add(store, &leader.1.api_url, region.id, to, &live[&to]).await;
                }
            }
            if gone.is_empty() && region.peers.len() > target {
                let victim = region
                    .peers
                    .iter()
                    .filter(|p| **p != leader.0)
                    .max_by_key(|p| (load.get(p).copied().unwrap_or(0), **p));
                if let Some(victim) = victim {
                    tracing::info!(region = region.id, store = victim, "placement: trimming an extra replica");
                    return remove(store, &leader.1.api_url, region.id, *victim).await;
                }
            }
        }

        // Balance: move one replica from a store more than one above the least loaded store to
        // it, starting with the most loaded store that holds a region the least loaded lacks.
        let Some(idlest) = least_loaded(&[]) else { return Ok(()) };
        let fewest = load[&idlest];
        let mut donors: Vec<(u64, usize)> =
            load.iter().map(|(id, n)| (*id, *n)).filter(|(_, n)| *n > fewest + 1).collect();
        donors.sort_by_key(|(id, n)| (std::cmp::Reverse(*n), *id));
        for (busiest, _) in donors {
            let movable = regions.iter().find(|r| {
                // Not a region the donor leads: the trim that follows never removes a leader.
                r.peers.contains(&busiest)
                    && !r.peers.contains(&idlest)
                    && r.peers.len() == target
                    && r.leader.is_some_and(|l| l != busiest)
            });
            if let Some(region) = movable {
                let Some(leader) = region.leader.and_then(|l| live.get(&l)) else { continue };
                tracing::info!(region = region.id, from = busiest, to = idlest, "placement: rebalancing a replica");
                return add(store, &leader.api_url, region.id, idlest, &live[&idlest]).await;
            }
            // Every region the donor could give up, it leads: move one leadership away first.
            let led = regions.iter().find(|r| r.leader == Some(busiest) && !r.peers.contains(&idlest));
            if let Some((region, heir)) =
                led.and_then(|r| r.peers.iter().find(|p| **p != busiest && live.contains_key(p)).map(|h| (r, *h)))
            {
                tracing::info!(
                    region = region.id,
                    from = busiest,
                    to = heir,
                    "placement: moving leadership off a loaded store"
                );
                let request = pb::CampaignRequest { region_id: region.id };
                client(store, &live[&heir].api_url)?.campaign(request).await.map_err(|s| s.message().to_string())?;
                return Ok(());
            }
        }
        Ok(())
    }
}

fn client(store: &Store, api_url: &str) -> Result<RegionsClient<tonic::transport::Channel>, String> {
    let options = photon_client::ChannelOptions { ca: store.api_ca.clone(), ..Default::default() };
    Ok(RegionsClient::new(photon_client::lazy_channel(api_url, &options).map_err(|e| e.to_string())?))
}

async fn add(store: &Store, leader_url: &str, region_id: u64, store_id: u64, to: &Live) -> Result<(), String> {
    let request =
        pb::AddReplicaRequest { region_id, store_id, peer_addr: to.peer_addr.clone(), api_url: to.api_url.clone() };
    client(store, leader_url)?.add_replica(request).await.map_err(|s| s.message().to_string())?;
    Ok(())
}

async fn remove(store: &Store, leader_url: &str, region_id: u64, store_id: u64) -> Result<(), String> {
    let request = pb::RemoveReplicaRequest { region_id, store_id };
    client(store, leader_url)?.remove_replica(request).await.map_err(|s| s.message().to_string())?;
    Ok(())
}
