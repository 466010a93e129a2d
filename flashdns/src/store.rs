//! FlashDNS's state in chainfire and every change to it. Layout under the prefix
//! (`/photoncloud/flashdns/`):
//! - `zones/<zone>` → [`Zone`] (metadata, spec, serial);
//! - `records/<zone>/<generation>/<owner>/<TYPE>` → [`RecordSet`]; only the zone's current
//!   `records_generation` is served.
//!
//! Invariant: every change to a zone's records is one transaction that also writes the zone
//! with its serial bumped, conditional on the zone's revision, so serials never repeat and a
//! node that sees a record change sees the serial that goes with it. A whole-zone import is
//! larger than a transaction may be (chainfire allows 128 operations), so it writes a new
//! generation in batches nobody serves yet, then switches the zone to it in one transaction.

use hickory_proto::rr::{Name, RecordType};
use photon_resource::{FieldError, Metadata, Owner, ResourceError, Store, Tx, Versioned};

use crate::model::{self, RecordSet, RecordSetSpec, Zone, ZoneSpec};

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
}

impl Zones {
    pub fn new(store: Store) -> Self {
        Self { store }
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
        let zone = Zone { metadata: Metadata::new(spec.name.clone(), owner), spec, serial: 1, records_generation: 0 };
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
        let tx = Tx::new().delete(&zone.key, zone.version).delete_prefix(&records_prefix(&zone.value.spec.name));
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
        let tx = self.bump(&zone)?.put(&key, &set)?;
        match self.store.commit(tx).await? {
            Some(revision) => Ok(RecordSet { resource_version: revision, ..set }),
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
        let tx = self.bump(&zone)?.delete(&key, set.resource_version);
        match self.store.commit(tx).await? {
            Some(_) => Ok(()),
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
        let switch = Tx::new().update(&current.key, &updated, current.version)?;
        match self.store.commit(switch).await {
            Ok(Some(revision)) => {
                self.store.commit(Tx::new().delete_prefix(&generation_prefix(&name, old_generation))).await?;
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

    /// A transaction that writes `zone` with the next serial, if it is still at its version.
    fn bump(&self, zone: &Versioned<Zone>) -> Result<Tx, ResourceError> {
        let mut next = zone.value.clone();
        next.serial = next_serial(next.serial);
        next.metadata.touch();
        next.metadata.resource_version = 0;
        Tx::new().update(&zone.key, &next, zone.version)
    }
}
