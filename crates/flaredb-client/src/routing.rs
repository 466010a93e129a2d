//! The client's view of the cluster: which regions exist, which store leads each, and where
//! each store answers. Learned from every store's ListRegions (a store names its own URL).

use std::collections::HashMap;

use photon_api::flaredb::v1::{Region, RegionEpoch};

#[derive(Debug, Default)]
pub struct Routes {
    regions: Vec<Region>,
    /// Store id → API URL.
    stores: HashMap<u64, String>,
}

impl Routes {
    /// Folds in one store's answer: newer epochs win; a known leader is kept.
    pub fn learn(&mut self, regions: Vec<Region>) {
        for region in regions {
            for peer in &region.peers {
                if !peer.api_url.is_empty() {
                    self.stores.insert(peer.store_id, peer.api_url.clone());
                }
            }
            match self.regions.iter_mut().find(|r| r.id == region.id) {
                Some(known) if known.epoch > region.epoch => {}
                Some(known) => {
                    let leader =
                        if region.leader_store_id != 0 { region.leader_store_id } else { known.leader_store_id };
                    *known = Region { leader_store_id: leader, ..region };
                }
                None => self.regions.push(region),
            }
        }
    }

    /// Where to send a request for store key `key`: the region leader's URL if known, else a
    /// replica's, with the region as this map knows it (sent along, so a store can tell the
    /// map is stale). `None`: no region known for it yet.
    pub fn route_for(&self, key: &[u8], reverse_from: bool) -> Option<(String, RegionEpoch)> {
        let region = self.regions.iter().find(|r| {
            if reverse_from {
                r.start_key.as_slice() < key && (r.end_key.is_empty() || key <= r.end_key.as_slice())
            } else {
                key >= r.start_key.as_slice() && (r.end_key.is_empty() || key < r.end_key.as_slice())
            }
        })?;
        let epoch = RegionEpoch { id: region.id, epoch: region.epoch };
        if let Some(url) = self.stores.get(&region.leader_store_id) {
            return Some((url.clone(), epoch));
        }
        region.peers.iter().find_map(|p| self.stores.get(&p.store_id).cloned()).map(|url| (url, epoch))
    }

    /// Forgets the leader of the region holding `key` (it stopped answering as one).
    pub fn forget_leader(&mut self, key: &[u8]) {
        if let Some(region) = self
            .regions
            .iter_mut()
            .find(|r| key >= r.start_key.as_slice() && (r.end_key.is_empty() || key < r.end_key.as_slice()))
        {
            region.leader_store_id = 0;
        }
    }

    pub fn store_urls(&self) -> Vec<String> {
        self.stores.values().cloned().collect()
    }
}
