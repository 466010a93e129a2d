//! This node's in-memory copy of every zone: fed by `photon_resource::follow` from chainfire,
//! rebuilt zone by zone as changes arrive, and published whole to the transports. Chainfire
//! going away leaves the last copy answering. Each zone's journal is followed too, and the
//! transfers' snapshot of a zone (`crate::transfer::ZoneTransfer`) is rebuilt with it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::rr::{RData, Record};
use photon_resource::Change;

use crate::dnssec::keys::ZoneKey;
use crate::dnssec::{sign_zone, Keyring, SignatureCache};

use crate::dns::{Catalog, Zone as ServedZone};
use crate::model::{self, RecordSet, Zone};
use crate::store::{self, PREFIX};
use crate::transfer::journal::{Journal, JournalEntry};
use crate::transfer::ZoneTransfer;
use crate::transport::Answerer;

/// The stored state, as last seen.
#[derive(Default)]
pub struct Mirror {
    zones: HashMap<String, Zone>,
    /// Record sets by key (`records/<zone>/<owner>/<TYPE>`), ordered so a zone's are adjacent.
    records: BTreeMap<String, RecordSet>,
    served: HashMap<String, Arc<ServedZone>>,
    /// Journal entries by key (`journal/<zone>/<generation>/<serial>`).
    journal: BTreeMap<String, Arc<JournalEntry>>,
    transfers: HashMap<String, Arc<ZoneTransfer>>,
    /// Opens signed zones' keys (none: signed zones are served unsigned, with an error).
    keyring: Option<Arc<Keyring>>,
    /// Each signed zone's signatures, reused while the data is unchanged.
    signature_caches: HashMap<String, SignatureCache>,
    /// The chainfire revision the copy is at (0: none yet).
    pub revision: i64,
}

impl Mirror {
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self { keyring: Some(keyring), ..Self::default() }
    }

    /// Re-signs every signed zone whose signatures are due (the cache keeps the rest) and
    /// publishes the catalog: run periodically, since an unchanged zone's signatures expire.
    pub fn resign(&mut self, answerer: &Answerer) {
        let signed: Vec<String> = self.zones.iter().filter(|(_, z)| !z.dnssec.is_empty()).map(|(n, _)| n.clone()).collect();
        if signed.is_empty() {
            return;
        }
        for name in &signed {
            self.rebuild(name);
        }
        self.apply(Vec::new(), answerer);
    }

    /// Applies a batch of changes and publishes the new catalog to `answerer`.
    pub fn apply(&mut self, changes: Vec<Change>, answerer: &Answerer) {
        let mut dirty: HashSet<String> = HashSet::new();
        for change in changes {
            match change {
                Change::Snapshot { items, revision } => {
                    self.zones.clear();
                    self.records.clear();
                    self.journal.clear();
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
        answerer.transfers().publish(self.transfers.values().cloned());
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
        } else if let Some((zone, generation, _)) = store::zone_of_journal_key(key) {
            match serde_json::from_slice::<JournalEntry>(value) {
                Ok(entry) => {
                    self.journal.insert(key.to_string(), Arc::new(entry));
                }
                Err(e) => tracing::error!(%key, error = %e, "stored journal entry does not decode; ignoring it"),
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
        } else if let Some((zone, generation, _)) = store::zone_of_journal_key(key) {
            self.journal.remove(key);
            self.mark(zone, generation, dirty);
        }
    }

    /// The keys a signed zone is signed with (empty when unsigned or unopenable, logged).
    fn zone_keys(&self, name: &str, zone: &Zone) -> Vec<ZoneKey> {
        if zone.dnssec.is_empty() {
            return Vec::new();
        }
        let Some(keyring) = &self.keyring else {
            tracing::error!(zone = %name, "zone is signed but this node has no DNSSEC keyring; serving it unsigned");
            return Vec::new();
        };
        let mut keys = Vec::new();
        for stored in &zone.dnssec {
            match keyring.open(stored) {
                Ok(key) => keys.push(key),
                Err(e) => tracing::error!(zone = %name, tag = stored.tag, error = %e,
                    "cannot open a DNSSEC key (is dnssec.master_key_file the cluster's?); serving the zone unsigned"),
            }
        }
        if keys.len() < zone.dnssec.len() {
            return Vec::new();
        }
        keys
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
            self.transfers.remove(name);
            return;
        };
        let origin = zone.spec.origin();
        let mut records = zone.apex_records();
        let keys = self.zone_keys(name, zone);
        records.extend(keys.iter().map(|key| {
            Record::from_rdata(origin.clone(), zone.spec.ttl, RData::DNSSEC(DNSSECRData::DNSKEY(key.dnskey.clone())))
        }));
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
                let built = sign(&mut self.signature_caches, name, built, &keys);
                tracing::debug!(zone = %name, serial = built.serial(), "zone loaded");
                let built = Arc::new(built);
                let mut journal = Journal::default();
                let prefix = format!("{}{}/", store::journal_prefix(name), zone.records_generation);
                for (_, entry) in self.journal.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
                    journal.insert(entry.clone());
                }
                let transfer = ZoneTransfer::new(built.clone(), &zone.spec.secondaries, journal);
                self.transfers.insert(name.to_string(), Arc::new(transfer));
                self.served.insert(name.to_string(), built);
            }
            Err(e) => {
                tracing::error!(zone = %name, error = %e, "zone cannot be served");
                self.served.remove(name);
                self.transfers.remove(name);
            }
        }
    }
}

impl Mirror {
    /// Signed zones with secondaries whose record has not changed for `age_ms`: their
    /// signatures are being renewed, which secondaries only fetch when the serial steps.
    pub fn signed_unchanged_since(&self, age_ms: u64) -> Vec<(photon_resource::Owner, String)> {
        let now = photon_resource::meta::now_ms();
        self.zones
            .values()
            .filter(|z| !z.dnssec.is_empty() && !z.spec.secondaries.is_empty())
            .filter(|z| now.saturating_sub(z.metadata.updated_ms) > age_ms)
            .map(|z| (z.metadata.owner(), z.spec.name.clone()))
            .collect()
    }

    /// Zones currently served.
    pub fn zone_count(&self) -> usize {
        self.served.len()
    }
}


/// `built` with its signatures, if it has keys (the zone's cache kept in `caches`).
fn sign(caches: &mut HashMap<String, SignatureCache>, name: &str, built: ServedZone, keys: &[ZoneKey]) -> ServedZone {
    if keys.is_empty() {
        caches.remove(name);
        return built;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
    let cache = caches.entry(name.to_string()).or_default();
    let started = std::time::Instant::now();
    match sign_zone(&built, keys, cache, now) {
        Ok(signatures) => {
            tracing::debug!(zone = %name, rrsigs = signatures.rrsig_count(), nsec = signatures.nsec_count(),
                ms = started.elapsed().as_millis() as u64, "zone signed");
            built.with_signatures(signatures)
        }
        Err(e) => {
            tracing::error!(zone = %name, error = %e, "cannot sign the zone; serving it unsigned");
            built
        }
    }
}
