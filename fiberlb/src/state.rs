//! What this node knows of every project's load balancers: the resources under FiberLB's
//! prefix, kept current by a chainfire watch (`photon_resource::follow`). The dataplane is
//! built from it; `/health` counts from it.

use std::collections::BTreeMap;

use photon_resource::Change;

#[derive(Debug, Default)]
pub struct State {
    /// Every resource's JSON by key.
    items: BTreeMap<String, Vec<u8>>,
    /// The chainfire revision the copy is at (0: no copy yet).
    pub revision: i64,
}

impl State {
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
