//! A copy of every value under a prefix, kept by applying what `follow` delivers: what a
//! service's dataplane is rebuilt from and its `/health` counts from.

use std::collections::BTreeMap;

use crate::follow::Change;

#[derive(Debug, Default)]
pub struct Mirror {
    /// Every resource's JSON by key.
    items: BTreeMap<String, Vec<u8>>,
    /// The chainfire revision the copy is at (0: no copy yet).
    pub revision: i64,
}

impl Mirror {
    pub fn apply(&mut self, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Snapshot { items, revision } => {
                    self.items = items.into_iter().collect();
                    self.revision = revision;
                }
                Change::Put { key, value, revision } => {
                    self.items.insert(key, value);
                    self.revision = revision;
                }
                Change::Delete { key, revision } => {
                    self.items.remove(&key);
                    self.revision = revision;
                }
            }
        }
    }

    pub fn items(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.items
    }
}
