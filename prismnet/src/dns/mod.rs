//! Ports' names in FlashDNS, worked out from the resources: each VPC gets a zone
//! `<vpc>.<project>.<org>.<domain>` and each port with an address a record `<port>.<subnet>`
//! there. Pure, so what a change means is tested without FlashDNS; `registrar` keeps FlashDNS
//! in step with it.

pub mod flashdns;
pub mod registrar;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use photon_resource::{Layout, Owner, Resource};

use crate::model::port::PortSpec;
use crate::model::vpc::VpcSpec;

/// The longest name DNS carries, in text without the final dot (RFC 1035 §2.3.4 and §3.1).
const MAX_NAME: usize = 253;

/// Where names go: under one domain, lower case, without the final dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    domain: String,
}

/// Each zone (absolute, with the final dot) and its records: owner name (absolute) → address.
pub type Zones = BTreeMap<String, BTreeMap<String, Ipv4Addr>>;

impl Naming {
    /// `domain` as `dns.domain` gives it (`photon.internal`, a final dot allowed).
    pub fn new(domain: &str) -> Result<Self, String> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if domain.is_empty() || domain.len() > MAX_NAME / 2 || !domain.split('.').all(label_ok) {
            return Err(format!("dns.domain {domain:?} is not a domain name (labels of a-z, 0-9 and '-', at most 126 characters)"));
        }
        Ok(Self { domain })
    }

    /// The platform's own zone every VPC's sits under.
    pub fn apex(&self) -> String {
        format!("{}.", self.domain)
    }

    /// VPC `vpc`'s zone, or `None` when the names make it longer than DNS allows.
    pub fn vpc_zone(&self, owner: &Owner, vpc: &str) -> Option<String> {
        let name = format!("{vpc}.{}.{}.{}", owner.project, owner.org, self.domain);
        (name.len() <= MAX_NAME).then(|| format!("{name}."))
    }

    /// The domain a subnet's machines are given (DHCP option 15): `<subnet>.<vpc zone>`.
    pub fn subnet_domain(&self, owner: &Owner, vpc: &str, subnet: &str) -> Option<String> {
        let zone = self.vpc_zone(owner, vpc)?;
        let name = format!("{subnet}.{}", zone.trim_end_matches('.'));
        (name.len() <= MAX_NAME).then_some(name)
    }

    /// Whether `zone` is one of this naming's VPC zones (four labels under the domain).
    pub fn is_vpc_zone(&self, zone: &str) -> bool {
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        zone.strip_suffix(&self.domain)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|rest| rest.split('.').count() == 3 && rest.split('.').all(|l| !l.is_empty()))
    }
}

fn decode<S: serde::de::DeserializeOwned>(value: &[u8]) -> Option<Resource<S>> {
    serde_json::from_slice(value).ok()
}

/// Every VPC's zone and records from the resources (`items`, by key), and the names that could
/// not be made (too long), to be logged.
pub fn desired(naming: &Naming, layout: &Layout, items: &BTreeMap<String, Vec<u8>>) -> (Zones, Vec<String>) {
    let mut zones = Zones::new();
    let mut problems = Vec::new();
    // VPCs first (keys sort a VPC before what it holds, but a port's VPC must be known anyway).
    for (key, value) in items {
        let Some((owner, path, names)) = layout.parse(key) else { continue };
        if let (["vpcs"], [vpc]) = (path.as_slice(), names.as_slice()) {
            if decode::<VpcSpec>(value).is_none() {
                continue;
            }
            match naming.vpc_zone(&owner, vpc) {
                Some(zone) => {
                    zones.entry(zone).or_default();
                }
                None => problems.push(format!("VPC {}/{}/{vpc}: its zone's name would exceed {MAX_NAME} characters", owner.org, owner.project)),
            }
        }
    }
    for (key, value) in items {
        let Some((owner, path, names)) = layout.parse(key) else { continue };
        let (["vpcs", "subnets", "ports"], [vpc, subnet, port]) = (path.as_slice(), names.as_slice()) else { continue };
        let Some(ip) = decode::<PortSpec>(value).and_then(|r| r.spec.ip) else { continue };
        let Some(zone) = naming.vpc_zone(&owner, vpc) else { continue };
        let Some(records) = zones.get_mut(&zone) else { continue };
        let name = format!("{port}.{subnet}.{zone}");
        if name.len() > MAX_NAME + 1 {
            problems.push(format!("port {key}: its name would exceed {MAX_NAME} characters"));
            continue;
        }
        records.insert(name, ip);
    }
    (zones, problems)
}

#[cfg(test)]
mod tests;
