//! What tenants create: zones and the record sets in them, as stored in chainfire and as the
//! API shows them; validation on receipt (every error names its field); and the records a
//! zone serves, made from them.

use std::str::FromStr;

use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use photon_resource::{FieldError, Metadata};
use serde::{Deserialize, Serialize};


/// The record types a record set may have (SOA comes from the zone itself).
pub const TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::DNAME,
    RecordType::MX,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::NS,
    RecordType::PTR,
    RecordType::CAA,
    RecordType::SSHFP,
    RecordType::TLSA,
];

/// Limits that keep one tenant's zone from hurting the others.
pub const MAX_TTL: u32 = 604_800 * 4;
pub const MAX_RECORDS_PER_SET: usize = 400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaSpec {
    /// The primary name server (MNAME).
    pub mname: String,
    /// The responsible person's mailbox as a name (RNAME, `hostmaster.example.com.`).
    pub rname: String,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// The TTL of negative answers (RFC 2308).
    pub minimum: u32,
}

/// A zone as tenants create it (every field but `name` may be left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// The zone's origin, absolute (`example.com.`; a missing final dot is added).
    pub name: String,
    /// TTL of the SOA and the apex NS records.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    #[serde(default)]
    pub soa: Option<SoaSpec>,
    /// The apex NS records (default: `ns1.<zone>`).
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// TTL of the apex NS records (default: `ttl`).
    #[serde(default)]
    pub nameserver_ttl: Option<u32>,
    /// Set on reverse zones made from a subnet (`reverse-zones`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse: Option<crate::reverse::ReverseSpec>,
    /// Secondary servers: they may transfer the zone (AXFR, IXFR) and are notified of changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secondaries: Vec<Secondary>,
}

/// A secondary server of a zone (`crate::transfer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secondary {
    /// `ip:port`: where NOTIFY goes; transfers are served to this IP.
    pub address: String,
    /// The TSIG key (in `[transfer] keys`) its transfers are signed with.
    pub key: String,
}

/// More secondaries than this is a mistake (and every change notifies each one).
pub const MAX_SECONDARIES: usize = 16;

fn default_ttl() -> u32 {
    3600
}

/// A stored zone: metadata, spec and the serial the next change bumps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    pub metadata: Metadata,
    pub spec: ZoneSpec,
    pub serial: u32,
    /// Which generation of record sets is served (`records/<zone>/<generation>/...`).
    #[serde(default)]
    pub records_generation: u64,
    /// The keys the zone is signed with (DNSSEC); none: unsigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dnssec: Vec<crate::dnssec::StoredKey>,
}

/// One record set: all records of one type at one name, with one TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSetSpec {
    pub ttl: u32,
    /// Each record's data in master-file syntax (`192.0.2.1`, `10 mail.example.com.`,
    /// `"v=spf1 -all"`); names may be relative to the zone.
    pub data: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSet {
    /// The owner, absolute.
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: u32,
    pub data: Vec<String>,
    pub updated_ms: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resource_version: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A zone name in canonical form (lowercase, absolute), or what is wrong with it.
pub fn zone_name(field: &str, text: &str) -> Result<Name, FieldError> {
    let name = absolute_name(field, text, None)?;
    if name.is_root() {
        return Err(FieldError::new(field, "the root zone cannot be served"));
    }
    if name.iter().any(|label| label == b"*") {
        return Err(FieldError::new(field, "a zone name cannot contain a wildcard label"));
    }
    Ok(name.to_lowercase())
}

/// `text` as an absolute name (relative to `origin` when it has no final dot and an origin
/// is given; `@` is the origin), checked for length.
pub fn absolute_name(field: &str, text: &str, origin: Option<&Name>) -> Result<Name, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(field, "a name is required"));
    }
    if text == "@" {
        return origin.cloned().ok_or_else(|| FieldError::new(field, "@ needs a zone"));
    }
    let mut name = Name::from_str(text).map_err(|e| FieldError::new(field, format!("{text:?} is not a DNS name: {e}")))?;
    if !name.is_fqdn() {
        name = match origin {
            Some(origin) => name
                .append_domain(origin)
                .map_err(|e| FieldError::new(field, format!("{text:?} in {origin} is too long: {e}")))?,
            None => {
                name.set_fqdn(true);
                name
            }
        };
    }
    if name.len() > 255 {
        return Err(FieldError::new(field, format!("{text:?} is longer than 255 octets")));
    }
    Ok(name)
}

pub fn record_type(field: &str, text: &str) -> Result<RecordType, FieldError> {
    let rtype = RecordType::from_str(&text.to_ascii_uppercase())
        .map_err(|_| FieldError::new(field, format!("{text:?} is not a record type")))?;
    if rtype == RecordType::SOA {
        return Err(FieldError::new(field, "the SOA record is the zone's own: change it on the zone"));
    }
    if !TYPES.contains(&rtype) {
        let names: Vec<String> = TYPES.iter().map(|t| t.to_string()).collect();
        return Err(FieldError::new(field, format!("type {rtype} is not supported (supported: {})", names.join(", "))));
    }
    Ok(rtype)
}

/// The record data of `rtype` from its master-file text, with relative names completed, read
/// as a zone file's line is (escapes, quoting, generic `\# len hex` data).
pub fn parse_rdata(field: &str, rtype: RecordType, text: &str, origin: &Name) -> Result<RData, FieldError> {
    if text.trim().is_empty() {
        return Err(FieldError::new(field, "record data is empty"));
    }
    crate::zonefile::parse_rdata(rtype, text, origin)
        .map_err(|e| FieldError::new(field, format!("{text:?} is not valid {rtype} data: {e}")))
}

/// Checks a record set for `owner`/`rtype` in zone `origin`; gives its records.
pub fn check_record_set(
    origin: &Name,
    owner: &Name,
    rtype: RecordType,
    spec: &RecordSetSpec,
) -> Result<Vec<Record>, FieldError> {
    if !origin.zone_of(owner) {
        return Err(FieldError::new("name", format!("{owner} is not in the zone {origin}")));
    }
    if spec.ttl > MAX_TTL {
        return Err(FieldError::new("ttl", format!("{} is more than the largest TTL allowed, {MAX_TTL}", spec.ttl)));
    }
    if spec.data.is_empty() {
        return Err(FieldError::new("data", "a record set needs at least one record (delete it instead)"));
    }
    if spec.data.len() > MAX_RECORDS_PER_SET {
        return Err(FieldError::new("data", format!("{} records; at most {MAX_RECORDS_PER_SET} per set", spec.data.len())));
    }
    if matches!(rtype, RecordType::CNAME | RecordType::DNAME) && spec.data.len() > 1 {
        return Err(FieldError::new("data", format!("a {rtype} record set has exactly one record")));
    }
    if owner == origin && rtype == RecordType::CNAME {
        return Err(FieldError::new("name", "a CNAME cannot be at the zone apex (it holds the SOA and NS)"));
    }
    let mut records = Vec::with_capacity(spec.data.len());
    for (i, text) in spec.data.iter().enumerate() {
        let rdata = parse_rdata(&format!("data[{i}]"), rtype, text, origin)?;
        records.push(Record::from_rdata(owner.clone(), spec.ttl, rdata));
    }
    Ok(records)
}

impl ZoneSpec {
    /// Fills defaults and checks every field; `name` becomes canonical.
    pub fn validate(mut self) -> Result<Self, FieldError> {
        let origin = zone_name("name", &self.name)?;
        self.name = origin.to_ascii();
        if self.ttl > MAX_TTL {
            return Err(FieldError::new("ttl", format!("{} is more than the largest TTL allowed, {MAX_TTL}", self.ttl)));
        }
        if self.nameserver_ttl.is_some_and(|ttl| ttl > MAX_TTL) {
            return Err(FieldError::new("nameserver_ttl", format!("more than the largest TTL allowed, {MAX_TTL}")));
        }
        if let Some(reverse) = &self.reverse {
            let net = crate::reverse::network("reverse.cidr", &reverse.cidr)?;
            if !crate::reverse::zones_of(net).iter().any(|(name, _)| *name == origin) {
                return Err(FieldError::new("reverse.cidr", format!("{} is not a reverse zone of {net}", self.name)));
            }
            if let Some(pattern) = &reverse.ptr_pattern {
                crate::dns::PtrSynthesis::check(net, pattern).map_err(|e| FieldError::new("reverse.ptr_pattern", e))?;
            }
        }
        if self.nameservers.is_empty() {
            self.nameservers.push(format!("ns1.{}", self.name));
        }
        for (i, ns) in self.nameservers.iter_mut().enumerate() {
            *ns = absolute_name(&format!("nameservers[{i}]"), ns, Some(&origin))?.to_ascii();
        }
        let mut soa = self.soa.take().unwrap_or_else(|| SoaSpec {
            mname: self.nameservers[0].clone(),
            rname: format!("hostmaster.{}", self.name),
            refresh: 3600,
            retry: 600,
            expire: 1_209_600,
            minimum: 300,
        });
        soa.mname = absolute_name("soa.mname", &soa.mname, Some(&origin))?.to_ascii();
        soa.rname = absolute_name("soa.rname", &soa.rname, Some(&origin))?.to_ascii();
        for (field, value) in [("soa.refresh", soa.refresh), ("soa.retry", soa.retry), ("soa.expire", soa.expire)] {
            if value == 0 || value > i32::MAX as u32 {
                return Err(FieldError::new(field, format!("{value} is not between 1 and {}", i32::MAX)));
            }
        }
        if soa.minimum > 86_400 * 7 {
            return Err(FieldError::new("soa.minimum", format!("{} is more than a week", soa.minimum)));
        }
        self.soa = Some(soa);
        if self.secondaries.len() > MAX_SECONDARIES {
            return Err(FieldError::new(
                "secondaries",
                format!("{} secondaries; at most {MAX_SECONDARIES}", self.secondaries.len()),
            ));
        }
        for (i, secondary) in self.secondaries.iter_mut().enumerate() {
            let address: std::net::SocketAddr = secondary.address.trim().parse().map_err(|_| {
                FieldError::new(format!("secondaries[{i}].address"), format!("{:?} is not ip:port", secondary.address))
            })?;
            secondary.address = address.to_string();
            secondary.key = crate::transfer::tsig::key_name(&secondary.key)
                .map_err(|e| FieldError::new(format!("secondaries[{i}].key"), e))?
                .to_ascii();
        }
        Ok(self)
    }

    pub fn origin(&self) -> Name {
        Name::from_str(&self.name).unwrap_or_else(|_| Name::root()).to_lowercase()
    }
}

impl Zone {
    /// The SOA and apex NS records the zone's spec and serial make.
    pub fn apex_records(&self) -> Vec<Record> {
        let origin = self.spec.origin();
        let mut records = Vec::new();
        let name = |text: &str| Name::from_str(text).unwrap_or_else(|_| origin.clone());
        if let Some(soa) = &self.spec.soa {
            let data = SOA::new(
                name(&soa.mname),
                name(&soa.rname),
                self.serial,
                soa.refresh as i32,
                soa.retry as i32,
                soa.expire as i32,
                soa.minimum,
            );
            records.push(Record::from_rdata(origin.clone(), self.spec.ttl, RData::SOA(data)));
        }
        let ns_ttl = self.spec.nameserver_ttl.unwrap_or(self.spec.ttl);
        for ns in &self.spec.nameservers {
            records.push(Record::from_rdata(origin.clone(), ns_ttl, RData::NS(NS(name(ns)))));
        }
        records
    }
}

/// The records of a stored record set (already validated when it was written; a set that no
/// longer parses is skipped by the caller and logged).
pub fn records_of(origin: &Name, set: &RecordSet) -> Result<Vec<Record>, FieldError> {
    let owner = absolute_name("name", &set.name, Some(origin))?;
    let rtype = record_type("type", &set.rtype)?;
    check_record_set(origin, &owner, rtype, &RecordSetSpec { ttl: set.ttl, data: set.data.clone() })
}
