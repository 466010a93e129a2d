//! Regions: contiguous ranges of the store key space, each replicated by its own Raft group.

pub mod app;

use serde::{Deserialize, Serialize};

/// What defines a region. Replicated with the region (its `regions` row is written with the
/// applied state) and published to chainfire's region map by the region's leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    pub id: u64,
    /// Inclusive.
    pub start_key: Vec<u8>,
    /// Exclusive; empty: unbounded.
    pub end_key: Vec<u8>,
    /// Bumped by every split and membership change.
    pub epoch: u64,
}

impl Descriptor {
    /// The region a new cluster starts with: the whole key space.
    pub fn first() -> Self {
        Self { id: 1, start_key: Vec::new(), end_key: Vec::new(), epoch: 1 }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice() && (self.end_key.is_empty() || key < self.end_key.as_slice())
    }
}
