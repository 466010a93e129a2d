//! This node's in-memory copy of every zone: fed by `photon_resource::follow` from chainfire,
//! rebuilt zone by zone as changes arrive, and published whole to the transports. Chainfire
//! going away leaves the last copy answering.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use photon_resource::Change;

use crate::dns::{Catalog, Zone as ServedZone};
use crate::model::{self, RecordSet, Zone};
use crate::store::{self, PREFIX};
use crate::transport::Answerer;

/// The stored state, as last seen.
#[derive(Default)]
pub struct Mirror {
    zones: HashMap<String, Zone>,
    /// Record sets by key (`records/<zone>/<owner>/<TYPE>`), ordered so a zone's are adjacent.
    records: BTreeMap<String, RecordSet>,
    served: HashMap<String, Arc<ServedZone>>,
    /// The chainfire revision the copy is at (0: none yet).
    pub revision: i64,
}

impl Mirror {
    /// Applies a batch of changes and publishes the new catalog to `answerer`.
    pub fn apply(&mut self, changes: Vec<Change>, answerer: &Answerer) {
        let mut dirty: HashSet<String> = HashSet::new();
        for change in changes {
            match change {
                Change::Snapshot { items, revision } => {
                    self.zones.clear();
                    self.records.clear();
                    for (key, value) in items {
                        self.put(&key, &value, &mut dirty);
                    }
                    dirty.extend(self.served.keys().cloned());
                    dirty.extend(self.zones.keys().cloned());
                    self.revision = revision;
                }
                Change::Put { key, value, revision } => {
                    self.put(&key, &value, &mut dirty);
                    self.revision = revision;
                }
                Change::Delete { key, revision } => {
                    self.delete(&key, &mut dirty);
                    self.revision = revision;
                }
            }
        }
        for zone in dirty {
            self.rebuild(&zone);
        }
        let catalog = Catalog::new(self.served.values().cloned());
        answerer.metrics().zones.set(catalog.len() as i64);
        answerer.metrics().records.set(self.served.values().map(|z| z.record_count() as i64).sum());
        answerer.publish(catalog);
    }

    fn put(&mut self, key: &str, value: &[u8], dirty: &mut HashSet<String>) {
        if let Some(name) = key.strip_prefix(PREFIX).and_then(|k| k.strip_prefix("zones/")) {
            match serde_json::from_slice::<Zone>(value) {
                Ok(zone) => {
                    self.zones.insert(name.to_string(), zone);
                }
                Err(e) => tracing::error!(%key, error = %e, "stored zone does not decode; ignoring it"),
            }
            dirty.insert(name.to_string());
        } else if let Some((zone, generation)) = store::zone_of_record_key(key) {
            match serde_json::from_slice::<RecordSet>(value) {
                Ok(set) => {
                    self.records.insert(key.to_string(), set);
                }
                Err(e) => tracing::error!(%key, error = %e, "stored record set does not decode; ignoring it"),
            }
            self.mark(zone, generation, dirty);
        }
    }

    fn delete(&mut self, key: &str, dirty: &mut HashSet<String>) {
        if let Some(name) = key.strip_prefix(PREFIX).and_then(|k| k.strip_prefix("zones/")) {
            self.zones.remove(name);
            dirty.insert(name.to_string());
        } else if let Some((zone, generation)) = store::zone_of_record_key(key) {
            self.records.remove(key);
            self.mark(zone, generation, dirty);
        }
    }

    /// A record change makes its zone dirty only if it is in the served generation (an
    /// import's staging and clean-up are not).
    fn mark(&self, zone: &str, generation: u64, dirty: &mut HashSet<String>) {
        if self.zones.get(zone).is_none_or(|z| z.records_generation == generation) {
            dirty.insert(zone.to_string());
        }
    }

    /// Builds the served copy of `name` from its zone and record sets (or drops it).
    fn rebuild(&mut self, name: &str) {
        let Some(zone) = self.zones.get(name) else {
            self.served.remove(name);
            return;
        };
        let origin = zone.spec.origin();
        let mut records = zone.apex_records();
        let prefix = store::generation_prefix(name, zone.records_generation);
        for (key, set) in self.records.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
            match model::records_of(&origin, set) {
                Ok(set_records) => records.extend(set_records),
                Err(e) => tracing::error!(%key, error = %e.message, field = %e.field, "stored record set is invalid; not served"),
            }
        }
        let synthesis = crate::reverse::synthesis(zone);
        match ServedZone::build(origin, records) {
            Ok(built) => {
                let built = match synthesis {
                    Some(synthesis) => built.with_synthesis(synthesis),
                    None => built,
                };
                tracing::debug!(zone = %name, serial = built.serial(), "zone loaded");
                self.served.insert(name.to_string(), Arc::new(built));
            }
            Err(e) => {
                tracing::error!(zone = %name, error = %e, "zone cannot be served");
                self.served.remove(name);
            }
        }
    }
}

impl Mirror {
    /// Zones currently served.
    pub fn zone_count(&self) -> usize {
        self.served.len()
    }
}
