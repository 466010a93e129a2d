//! FlashDNS's state in chainfire and every change to it. Layout under the prefix
//! (`/photoncloud/flashdns/`):
//! - `zones/<zone>` → [`Zone`] (metadata, spec, serial);
//! - `records/<zone>/<generation>/<owner>/<TYPE>` → [`RecordSet`]; only the zone's current
//!   `records_generation` is served;
//! - `journal/<zone>/<generation>/<serial>` → [`JournalEntry`]: what the change to `serial`
//!   removed and added, for IXFR (`crate::transfer`); kept only for zones with secondaries, at
//!   most `journal_max` per zone, written in the change's transaction.
//!
//! Invariant: every change to a zone's records is one transaction that also writes the zone
//! with its serial bumped, conditional on the zone's revision, so serials never repeat and a
//! node that sees a record change sees the serial that goes with it. A whole-zone import is
//! larger than a transaction may be (chainfire allows 128 operations), so it writes a new
//! generation in batches nobody serves yet, then switches the zone to it in one transaction.

use std::sync::Arc;

use hickory_proto::rr::{Name, RecordType};
use photon_resource::{FieldError, Metadata, Owner, ResourceError, Store, Tx, Versioned};

use crate::model::{self, RecordSet, RecordSetSpec, Zone, ZoneSpec};
use crate::transfer::journal::JournalEntry;

pub const PREFIX: &str = "/photoncloud/flashdns/";
const KIND_ZONE: &str = "zone";
const KIND_RECORDS: &str = "record set";

pub fn zone_key(zone: &str) -> String {
    format!("{PREFIX}zones/{}", zone.trim_end_matches('.'))
}

/// Every generation of a zone's record sets.
pub fn records_prefix(zone: &str) -> String {
    format!("{PREFIX}records/{}/", zone.trim_end_matches('.'))
}

/// One generation of a zone's record sets.
pub fn generation_prefix(zone: &str, generation: u64) -> String {
    format!("{}{generation}/", records_prefix(zone))
}

pub fn record_key(zone: &str, generation: u64, owner: &str, rtype: RecordType) -> String {
    format!("{}{}/{}", generation_prefix(zone, generation), owner.trim_end_matches('.'), rtype)
}

/// Every generation of a zone's journal.
pub fn journal_prefix(zone: &str) -> String {
    format!("{PREFIX}journal/{}/", zone.trim_end_matches('.'))
}

/// The journal entry of the change to `serial` (zero-padded, so a generation's keys sort by
/// serial until it wraps).
pub fn journal_key(zone: &str, generation: u64, serial: u32) -> String {
    format!("{}{generation}/{serial:010}", journal_prefix(zone))
}

/// The zone, generation and serial of a journal key (`journal/<zone>/<generation>/<serial>`).
pub fn zone_of_journal_key(key: &str) -> Option<(&str, u64, u32)> {
    let mut parts = key.strip_prefix(PREFIX)?.strip_prefix("journal/")?.split('/');
    let zone = parts.next()?;
    let generation = parts.next()?.parse().ok()?;
    let serial = parts.next()?.parse().ok()?;
    Some((zone, generation, serial))
}

/// Journal entries kept per zone unless configured (`[transfer] journal_max`).
pub const DEFAULT_JOURNAL_MAX: u32 = 1000;

/// Called after a change to a zone with secondaries is committed: its name and new serial.
pub type ChangeHook = Arc<dyn Fn(&str, u32) + Send + Sync>;

/// Writes per transaction when an import stages a generation (chainfire allows 128).
const STAGE_BATCH: usize = 100;

/// The zone and generation a record key belongs to (`records/<zone>/<generation>/...`).
pub fn zone_of_record_key(key: &str) -> Option<(&str, u64)> {
    let mut parts = key.strip_prefix(PREFIX)?.strip_prefix("records/")?.split('/');
    let zone = parts.next()?;
    let generation = parts.next()?.parse().ok()?;
    Some((zone, generation))
}

/// Serial arithmetic (RFC 1982): the next serial, never 0 after a wrap.
fn next_serial(serial: u32) -> u32 {
    match serial.wrapping_add(1) {
        0 => 1,
        next => next,
    }
}

/// A zone record as the next change writes it: its serial stepped, its generation counted.
fn step(zone: &mut Zone) {
    zone.serial = next_serial(zone.serial);
    zone.metadata.touch();
    zone.metadata.resource_version = 0;
}

/// A zone's apex as a zone file gives it.
pub struct Apex {
    pub soa: crate::model::SoaSpec,
    /// TTL of the SOA.
    pub ttl: u32,
    pub nameservers: Vec<String>,
    pub nameserver_ttl: u32,
}

/// Whether `a` is newer than `b` in serial number arithmetic (RFC 1982 §3.2).
pub fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

#[derive(Clone)]
pub struct Zones {
    store: Store,
    journal_max: u32,
    on_change: Option<ChangeHook>,
}

impl Zones {
    pub fn new(store: Store) -> Self {
        Self { store, journal_max: DEFAULT_JOURNAL_MAX, on_change: None }
    }

    /// Keeps at most `max` journal entries per zone (0: no journal, IXFR sends whole zones).
    pub fn with_journal_max(mut self, max: u32) -> Self {
        self.journal_max = max;
        self
    }

    /// Calls `hook` after each committed change to a zone that has secondaries.
    pub fn on_change(mut self, hook: impl Fn(&str, u32) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(hook));
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The zone `name` if `owner` owns it (another project's zone is "not found", which
    /// reveals nothing about it).
    pub async fn get(&self, owner: &Owner, name: &str) -> Result<Versioned<Zone>, ResourceError> {
        let origin = model::zone_name("zone", name)?;
        let zone: Option<Versioned<Zone>> = self.store.get(&zone_key(&origin.to_ascii())).await?;
        match zone {
            Some(mut zone) if zone.value.metadata.owner() == *owner => {
                zone.value.metadata.resource_version = zone.version;
                Ok(zone)
            }
            _ => Err(ResourceError::NotFound { kind: KIND_ZONE, name: origin.to_ascii() }),
        }
    }

    /// The zones of `owner`, a page at a time, in name order.
    pub async fn list(&self, owner: &Owner, after: Option<&str>, limit: usize) -> Result<(Vec<Zone>, Option<String>), ResourceError> {
        let prefix = format!("{PREFIX}zones/");
        let mut after = after.map(zone_key);
        let mut zones = Vec::new();
        // Other tenants' zones are skipped, so a page may take several reads to fill.
        loop {
            let page = self.store.list::<Zone>(&prefix, after.as_deref(), limit.max(1) * 4).await?;
            for item in page.items {
                if item.value.metadata.owner() == *owner {
                    let mut zone = item.value;
                    zone.metadata.resource_version = item.version;
                    zones.push(zone);
                    if zones.len() == limit {
                        let next = zones.last().map(|z| z.spec.name.clone());
                        return Ok((zones, next));
                    }
                }
                after = Some(item.key);
            }
            if page.next.is_none() {
                return Ok((zones, None));
            }
        }
    }

    /// Creates a zone for `owner`. A zone name is claimed once across all tenants, and a zone
    /// inside another project's zone (or around one) is refused.
    pub async fn create(&self, owner: &Owner, spec: ZoneSpec) -> Result<Zone, ResourceError> {
        let spec = spec.validate()?;
        let origin = spec.origin();
        self.check_nesting(owner, &origin).await?;
        let zone = Zone {
            metadata: Metadata::new(spec.name.clone(), owner),
            spec,
            serial: 1,
            records_generation: 0,
            dnssec: Vec::new(),
        };
        let tx = Tx::new().create(&zone_key(&zone.spec.name), &zone)?;
        match self.store.commit(tx).await? {
            Some(revision) => {
                let mut zone = zone;
                zone.metadata.resource_version = revision;
                tracing::info!(zone = %zone.spec.name, org = %owner.org, project = %owner.project, "zone created");
                Ok(zone)
            }
            None => Err(ResourceError::AlreadyExists { kind: KIND_ZONE, name: zone.spec.name }),
        }
    }

    async fn check_nesting(&self, owner: &Owner, origin: &Name) -> Result<(), ResourceError> {
        let all = self.store.list_all::<Zone>(&format!("{PREFIX}zones/")).await?;
        for other in all {
            let other_origin = other.value.spec.origin();
            if other_origin == *origin || other.value.metadata.owner() == *owner {
                continue;
            }
            if other_origin.zone_of(origin) || origin.zone_of(&other_origin) {
                return Err(FieldError::new(
                    "name",
                    format!("{origin} overlaps {other_origin}, a zone of another project"),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Deletes a zone and all its record sets.
    pub async fn delete(&self, owner: &Owner, name: &str) -> Result<(), ResourceError> {
        let zone = self.get(owner, name).await?;
        let tx = Tx::new()
            .delete(&zone.key, zone.version)
            .delete_prefix(&records_prefix(&zone.value.spec.name))
            .delete_prefix(&journal_prefix(&zone.value.spec.name));
        match self.store.commit(tx).await? {
            Some(_) => {
                tracing::info!(zone = %zone.value.spec.name, "zone deleted");
                Ok(())
            }
            None => Err(ResourceError::Conflict { kind: KIND_ZONE, name: zone.value.spec.name, expected: zone.version }),
        }
    }

    /// Every record set of a zone.
    pub async fn record_sets(&self, owner: &Owner, zone: &str) -> Result<Vec<RecordSet>, ResourceError> {
        let zone = self.get(owner, zone).await?;
        let prefix = generation_prefix(&zone.value.spec.name, zone.value.records_generation);
        let sets = self.store.list_all::<RecordSet>(&prefix).await?;
        Ok(sets
            .into_iter()
            .map(|v| {
                let mut set = v.value;
                set.resource_version = v.version;
                set
            })
            .collect())
    }

    pub async fn record_set(&self, owner: &Owner, zone: &str, name: &str, rtype: &str) -> Result<RecordSet, ResourceError> {
        let zone = self.get(owner, zone).await?;
        let origin = zone.value.spec.origin();
        let owner_name = model::absolute_name("name", name, Some(&origin))?;
        let rtype = model::record_type("type", rtype)?;
        let key = record_key(&zone.value.spec.name, zone.value.records_generation, &owner_name.to_ascii(), rtype);
        match self.store.get::<RecordSet>(&key).await? {
            Some(v) => {
                let mut set = v.value;
                set.resource_version = v.version;
                Ok(set)
            }
            None => Err(ResourceError::NotFound { kind: KIND_RECORDS, name: format!("{owner_name} {rtype}") }),
        }
    }

    /// Creates or replaces the record set `name`/`rtype` in `zone`, bumping the serial.
    pub async fn set_records(
        &self,
        owner: &Owner,
        zone: &str,
        name: &str,
        rtype: &str,
        spec: RecordSetSpec,
    ) -> Result<RecordSet, ResourceError> {
        let zone = self.get(owner, zone).await?;
        let origin = zone.value.spec.origin();
        let owner_name = model::absolute_name("name", name, Some(&origin))?.to_lowercase();
        let rtype = model::record_type("type", rtype)?;
        model::check_record_set(&origin, &owner_name, rtype, &spec)?;
        self.check_exclusive(&zone.value, &owner_name, rtype).await?;
        let set = RecordSet {
            name: owner_name.to_ascii(),
            rtype: rtype.to_string(),
            ttl: spec.ttl,
            data: spec.data,
            updated_ms: photon_resource::meta::now_ms(),
            resource_version: 0,
        };
        let key = record_key(&zone.value.spec.name, zone.value.records_generation, &set.name, rtype);
        // Read under the zone's revision, which the commit compares: if it succeeds, this was
        // the set it replaced.
        let old = self.store.get::<RecordSet>(&key).await?.map(|v| v.value);
        let serial = next_serial(zone.value.serial);
        let change = JournalEntry::change(&origin, zone.value.serial, serial, old.as_ref(), Some(&set));
        let tx = self.journal(self.bump(&zone)?.put(&key, &set)?, &zone.value, change)?;
        match self.store.commit(tx).await? {
            Some(revision) => {
                self.changed(&zone.value.spec, serial);
                Ok(RecordSet { resource_version: revision, ..set })
            }
            None => Err(ResourceError::Conflict { kind: KIND_ZONE, name: zone.value.spec.name, expected: zone.version }),
        }
    }

    /// A CNAME stands alone at its name (RFC 1034 §3.6.2, RFC 2181 §10.1).
    async fn check_exclusive(&self, zone: &Zone, owner: &Name, rtype: RecordType) -> Result<(), ResourceError> {
        let generation = generation_prefix(&zone.spec.name, zone.records_generation);
        let prefix = format!("{generation}{}/", owner.to_ascii().trim_end_matches('.'));
        let here = self.store.list_all::<RecordSet>(&prefix).await?;
        let others: Vec<&str> = here.iter().map(|v| v.value.rtype.as_str()).filter(|t| *t != rtype.to_string()).collect();
        if rtype == RecordType::CNAME && !others.is_empty() {
            return Err(FieldError::new("type", format!("{owner} already has {}: a CNAME must stand alone", others.join(", "))).into());
        }
        if rtype != RecordType::CNAME && others.contains(&"CNAME") {
            return Err(FieldError::new("type", format!("{owner} has a CNAME, which must stand alone")).into());
        }
        Ok(())
    }

    /// Deletes the record set `name`/`rtype`, bumping the serial.
    pub async fn delete_records(&self, owner: &Owner, zone: &str, name: &str, rtype: &str) -> Result<(), ResourceError> {
        let set = self.record_set(owner, zone, name, rtype).await?;
        let zone = self.get(owner, zone).await?;
        let rtype = model::record_type("type", &set.rtype)?;
        let key = record_key(&zone.value.spec.name, zone.value.records_generation, &set.name, rtype);
        let serial = next_serial(zone.value.serial);
        let change = JournalEntry::change(&zone.value.spec.origin(), zone.value.serial, serial, Some(&set), None);
        let tx = self.journal(self.bump(&zone)?.delete(&key, set.resource_version), &zone.value, change)?;
        match self.store.commit(tx).await? {
            Some(_) => {
                self.changed(&zone.value.spec, serial);
                Ok(())
            }
            None => Err(ResourceError::Conflict { kind: KIND_ZONE, name: zone.value.spec.name, expected: zone.version }),
        }
    }

    /// Replaces every record set of a zone (a zone file import): the apex SOA values and NS
    /// come from `apex`, everything else from `sets`. The sets are staged as a new generation,
    /// then one transaction switches the zone to it (one serial step); the old generation is
    /// deleted after. A concurrent change to the zone makes the switch fail and the staged
    /// generation is removed.
    pub async fn replace(
        &self,
        owner: &Owner,
        zone: &str,
        apex: Option<Apex>,
        file_serial: Option<u32>,
        sets: Vec<RecordSet>,
    ) -> Result<Zone, ResourceError> {
        let current = self.get(owner, zone).await?;
        let name = current.value.spec.name.clone();
        let old_generation = current.value.records_generation;
        let generation = old_generation + 1;
        let staged = generation_prefix(&name, generation);
        // Left-overs of an import that died half-way are not ours to keep.
        self.store.commit(Tx::new().delete_prefix(&staged)).await?;
        for batch in sets.chunks(STAGE_BATCH) {
            let mut tx = Tx::new();
            for set in batch {
                let rtype = model::record_type("type", &set.rtype)?;
                tx = tx.put(&record_key(&name, generation, &set.name, rtype), set)?;
            }
            if let Err(e) = self.store.commit(tx).await {
                let _ = self.store.commit(Tx::new().delete_prefix(&staged)).await;
                return Err(e);
            }
        }
        let mut updated = current.value.clone();
        if let Some(apex) = apex {
            updated.spec.soa = Some(apex.soa);
            updated.spec.nameservers = apex.nameservers;
            updated.spec.ttl = apex.ttl;
            updated.spec.nameserver_ttl = Some(apex.nameserver_ttl);
        }
        // The file's serial is kept if it is newer (RFC 1982) than the zone's, or if the zone
        // has never been changed since it was created, so secondaries and operators see the
        // number they wrote; otherwise the zone's serial steps on.
        let fresh = old_generation == 0 && current.value.metadata.generation == 1;
        updated.serial = match file_serial {
            Some(serial) if fresh || serial_newer(serial, updated.serial) => serial,
            _ => next_serial(updated.serial),
        };
        updated.records_generation = generation;
        updated.metadata.touch();
        updated.metadata.resource_version = 0;
        // No difference is journaled for an import (it may be larger than a value may be):
        // the new generation's journal starts with a reset, and IXFR from before it is a full
        // transfer.
        let reset = JournalEntry::reset(current.value.serial, updated.serial);
        let switch = self.journal(Tx::new().update(&current.key, &updated, current.version)?, &updated, reset)?;
        match self.store.commit(switch).await {
            Ok(Some(revision)) => {
                let old = Tx::new()
                    .delete_prefix(&generation_prefix(&name, old_generation))
                    .delete_prefix(&format!("{}{old_generation}/", journal_prefix(&name)));
                self.store.commit(old).await?;
                self.changed(&updated.spec, updated.serial);
                updated.metadata.resource_version = revision;
                tracing::info!(zone = %name, sets = sets.len(), serial = updated.serial, "zone imported");
                Ok(updated)
            }
            Ok(None) => {
                let _ = self.store.commit(Tx::new().delete_prefix(&staged)).await;
                Err(ResourceError::Conflict { kind: KIND_ZONE, name, expected: current.version })
            }
            Err(e) => {
                let _ = self.store.commit(Tx::new().delete_prefix(&staged)).await;
                Err(e)
            }
        }
    }

    /// Adds `entry` to `zone`'s journal in `tx` and drops the entry `journal_max` changes back
    /// (changes between imports step the serial by one), if the zone keeps a journal.
    fn journal(&self, tx: Tx, zone: &Zone, entry: JournalEntry) -> Result<Tx, ResourceError> {
        if self.journal_max == 0 || zone.spec.secondaries.is_empty() {
            return Ok(tx);
        }
        let (name, generation) = (&zone.spec.name, zone.records_generation);
        let oldest = entry.to.wrapping_sub(self.journal_max);
        let mut tx =
            tx.put(&journal_key(name, generation, entry.to), &entry)?.remove(&journal_key(name, generation, oldest));
        if oldest > entry.to {
            // The window crosses the wrap, where `next_serial` skips 0.
            tx = tx.remove(&journal_key(name, generation, oldest.wrapping_sub(1)));
        }
        Ok(tx)
    }

    fn changed(&self, spec: &ZoneSpec, serial: u32) {
        if let Some(hook) = self.on_change.as_ref().filter(|_| !spec.secondaries.is_empty()) {
            hook(&spec.name, serial);
        }
    }

    /// Changes the zone's own record (its spec, its keys, or only its serial) with `change`:
    /// one serial step, and its secondaries are notified. No journal entry is written, so an
    /// IXFR across it sends the whole zone.
    pub async fn update_zone(
        &self,
        owner: &Owner,
        zone: &str,
        change: impl FnOnce(&mut Zone) -> Result<(), ResourceError>,
    ) -> Result<Zone, ResourceError> {
        let current = self.get(owner, zone).await?;
        let mut next = current.value.clone();
        change(&mut next)?;
        step(&mut next);
        let tx = Tx::new().update(&current.key, &next, current.version)?;
        match self.store.commit(tx).await? {
            Some(revision) => {
                next.metadata.resource_version = revision;
                self.changed(&next.spec, next.serial);
                Ok(next)
            }
            None => Err(ResourceError::Conflict { kind: KIND_ZONE, name: next.spec.name, expected: current.version }),
        }
    }

    /// Replaces the zone's DNSSEC keys (none: unsigned); the DNSKEY RRset changes.
    pub async fn set_keys(
        &self,
        owner: &Owner,
        zone: &str,
        keys: Vec<crate::dnssec::StoredKey>,
    ) -> Result<Zone, ResourceError> {
        self.update_zone(owner, zone, |z| {
            z.dnssec = keys;
            Ok(())
        })
        .await
    }

    /// Replaces the zone's settings (TTL, SOA values, apex NS, secondaries) with `spec`'s; its
    /// name and reverse subnet stay.
    pub async fn set_spec(&self, owner: &Owner, zone: &str, spec: ZoneSpec) -> Result<Zone, ResourceError> {
        self.update_zone(owner, zone, |z| {
            let mut spec = ZoneSpec { reverse: z.spec.reverse.clone(), ..spec };
            if model::zone_name("name", &spec.name)? != z.spec.origin() {
                return Err(FieldError::new("name", format!("a zone cannot be renamed ({} is {})", spec.name, z.spec.name)).into());
            }
            spec.name = z.spec.name.clone();
            z.spec = spec.validate()?;
            Ok(())
        })
        .await
    }

    /// A transaction that writes `zone` with the next serial, if it is still at its version.
    fn bump(&self, zone: &Versioned<Zone>) -> Result<Tx, ResourceError> {
        let mut next = zone.value.clone();
        step(&mut next);
        Tx::new().update(&zone.key, &next, zone.version)
    }
}
