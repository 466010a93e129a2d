//! Zone files in and out of the API: an import replaces a zone's records with a master file's
//! (its SOA values and apex NS included) in one transaction; an export writes the zone as
//! this node serves it.

use std::collections::BTreeMap;

use hickory_proto::rr::{RData, Record, RecordType};
use photon_resource::{Owner, ResourceError};

use crate::dns::dname;
use crate::model::{RecordSet, SoaSpec, Zone};
use crate::store::{Apex, Zones};
use crate::zonefile;

/// Replaces the records of `zone` with those of the master file `text`.
pub async fn import(zones: &Zones, owner: &Owner, zone: &str, text: &str) -> Result<Zone, ResourceError> {
    let current = zones.get(owner, zone).await?;
    let origin = current.value.spec.origin();
    let file = zonefile::parse(text, Some(&origin), Some(current.value.spec.ttl))
        .map_err(|e| ResourceError::Invalid { field: "body".into(), message: e.to_string() })?;
    if file.origin != origin {
        return Err(ResourceError::Invalid {
            field: "body".into(),
            message: format!("the file is for {} but the zone is {origin}", file.origin),
        });
    }
    let mut apex = None;
    let mut file_serial = None;
    let mut nameservers = Vec::new();
    let mut ns_ttl = current.value.spec.ttl;
    let mut sets: BTreeMap<(String, RecordType), RecordSet> = BTreeMap::new();
    for record in &file.records {
        let at_apex = record.name == origin;
        match (&record.data, at_apex) {
            (RData::SOA(soa), true) => {
                let spec = SoaSpec {
                    mname: soa.mname.to_ascii(),
                    rname: soa.rname.to_ascii(),
                    refresh: soa.refresh.max(1) as u32,
                    retry: soa.retry.max(1) as u32,
                    expire: soa.expire.max(1) as u32,
                    minimum: soa.minimum,
                };
                apex = Some((spec, record.ttl));
                file_serial = Some(soa.serial);
            }
            (RData::NS(ns), true) => {
                nameservers.push(ns.0.to_ascii());
                ns_ttl = record.ttl;
            }
            _ => {
                let owner_name = record.name.to_lowercase().to_ascii();
                let rtype = record.record_type();
                crate::model::record_type("type", &rtype.to_string()).map_err(|e| ResourceError::Invalid {
                    field: "body".into(),
                    message: format!("{} {rtype}: {}", record.name, e.message),
                })?;
                let set = sets.entry((owner_name.clone(), rtype)).or_insert_with(|| RecordSet {
                    name: owner_name,
                    rtype: rtype.to_string(),
                    ttl: record.ttl,
                    data: Vec::new(),
                    updated_ms: photon_resource::meta::now_ms(),
                    resource_version: 0,
                });
                set.data.push(data_text(record));
            }
        }
    }
    let (soa, soa_ttl) = apex.ok_or_else(|| ResourceError::Invalid {
        field: "body".into(),
        message: format!("the file has no SOA record at {origin}"),
    })?;
    if nameservers.is_empty() {
        return Err(ResourceError::Invalid { field: "body".into(), message: format!("the file has no NS records at {origin}") });
    }
    // Each set is checked as the API checks one, so an import cannot store what a PUT could not.
    for set in sets.values() {
        crate::model::records_of(&origin, set).map_err(|e| ResourceError::Invalid {
            field: "body".into(),
            message: format!("{} {}: {}: {}", set.name, set.rtype, e.field, e.message),
        })?;
    }
    let apex = Apex { soa, ttl: soa_ttl, nameservers, nameserver_ttl: ns_ttl };
    zones.replace(owner, zone, Some(apex), file_serial, sets.into_values().collect()).await
}

/// The zone as a master file.
pub async fn export(zones: &Zones, owner: &Owner, zone: &str) -> Result<String, ResourceError> {
    let current = zones.get(owner, zone).await?;
    let origin = current.value.spec.origin();
    let mut records = current.value.apex_records();
    for set in zones.record_sets(owner, zone).await? {
        let set_records = crate::model::records_of(&origin, &set)
            .map_err(|e| ResourceError::Corrupt(format!("record set {} {}: {}", set.name, set.rtype, e.message)))?;
        records.extend(set_records);
    }
    Ok(zonefile::export(&origin, &records))
}

/// A record's data as master-file text that `model::parse_rdata` reads back.
pub fn data_text(record: &Record) -> String {
    if let Some(target) = dname::target(&record.data) {
        return target.to_ascii();
    }
    zonefile::rdata_text(&record.data)
}
