//! Splitting a region: choosing where, allocating the new region's id in chainfire, and
//! proposing the split through the region's Raft (every replica applies it at the same log
//! position, so the new region starts identical everywhere).

use photon_raft::rocksdb::{Direction, IteratorMode};

use crate::error::FlareError;
use crate::keys::CF_DATA;
use crate::region::app::{Applied, Command};
use crate::region::Descriptor;
use crate::store::Store;

/// Keys and bytes (keys plus stored values) in a region, counted until a limit is passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    pub keys: u64,
    pub bytes: u64,
}

impl Store {
    /// Splits region `region_id` at `split_key` (a store key; `None`: its middle key). The
    /// left part keeps the id; the right part gets a new one.
    pub async fn split(
        &self,
        region_id: u64,
        split_key: Option<Vec<u8>>,
    ) -> Result<(Descriptor, Descriptor), FlareError> {
        let region = self.region(region_id)?;
        let descriptor = region.descriptor();
        let split_key = match split_key {
            Some(key) => key,
            None => self.middle_key(&descriptor)?.ok_or_else(|| {
                FlareError::InvalidArgument(format!("region {region_id} holds fewer than two keys: nothing to split"))
            })?,
        };
        if !descriptor.contains(&split_key) || split_key == descriptor.start_key {
            return Err(FlareError::InvalidArgument(format!(
                "split key {:?} is not strictly inside region {region_id}",
                String::from_utf8_lossy(&split_key)
            )));
        }
        let new_region = self.chainfire.allocate_region_id().await.map_err(FlareError::Unavailable)?;
        let metrics = region.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .filter(|(id, _)| voters.contains(id))
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        let command = Command::Split { split_key, new_region, epoch: descriptor.epoch, members };
        match self.propose(&region, command).await? {
            Applied::Split { left, right } => {
                tracing::info!(left = left.id, right = right.id, epoch = left.epoch, "region split");
                Ok((left, right))
            }
            Applied::StaleEpoch { current } => Err(FlareError::InvalidArgument(format!(
                "region {region_id} changed while splitting (now epoch {}); try again",
                current.epoch
            ))),
            other => Err(FlareError::Storage(format!("the region answered a different operation: {other:?}"))),
        }
    }

    /// The key in the middle (by count) of the region's data, if it holds at least two keys.
    fn middle_key(&self, descriptor: &Descriptor) -> Result<Option<Vec<u8>>, FlareError> {
        let keys: Vec<Vec<u8>> = self.region_keys(descriptor, usize::MAX)?;
        if keys.len() < 2 {
            return Ok(None);
        }
        Ok(Some(keys[keys.len() / 2].clone()))
    }

    fn region_keys(&self, descriptor: &Descriptor, max: usize) -> Result<Vec<Vec<u8>>, FlareError> {
        let cf = self.db.cf_handle(CF_DATA).ok_or_else(|| FlareError::Storage("missing column family data".into()))?;
        let mut keys = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::From(&descriptor.start_key, Direction::Forward)) {
            let (key, _) = item.map_err(|e| FlareError::Storage(e.to_string()))?;
            if !descriptor.contains(&key) || keys.len() >= max {
                break;
            }
            keys.push(key.to_vec());
        }
        Ok(keys)
    }

    /// The region's size, counted until it passes `max_keys` or `max_bytes` (0: no limit on
    /// that one), so checking a large region costs no more than the threshold.
    pub fn region_size(&self, descriptor: &Descriptor, max_keys: u64, max_bytes: u64) -> Result<Size, FlareError> {
        let cf = self.db.cf_handle(CF_DATA).ok_or_else(|| FlareError::Storage("missing column family data".into()))?;
        let mut size = Size::default();
        for item in self.db.iterator_cf(cf, IteratorMode::From(&descriptor.start_key, Direction::Forward)) {
            let (key, value) = item.map_err(|e| FlareError::Storage(e.to_string()))?;
            if !descriptor.contains(&key) {
                break;
            }
            size.keys += 1;
            size.bytes += (key.len() + value.len()) as u64;
            if (max_keys != 0 && size.keys > max_keys) || (max_bytes != 0 && size.bytes > max_bytes) {
                break;
            }
        }
        Ok(size)
    }
}
