//! State a node keeps for each of its Raft groups, shared by the group's network factory, its
//! clients and its proposer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One `T` per group id in this process, created on first use.
pub(crate) struct PerGroup<T>(Arc<Mutex<HashMap<u64, Arc<T>>>>);

impl<T: Default> PerGroup<T> {
    pub(crate) fn of(&self, group: u64) -> Arc<T> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(group).or_default().clone()
    }
}

// Written out because derives would ask `T: Clone` and `T: Default` of the map's values.
impl<T> Clone for PerGroup<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Default for PerGroup<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}
