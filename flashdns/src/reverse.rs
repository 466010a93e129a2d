//! Reverse zones from a subnet: the zone names a CIDR needs (in-addr.arpa on octet
//! boundaries, ip6.arpa on nibble boundaries; a prefix between boundaries takes every zone
//! below it), the PTR name pattern they answer with, and registering one address's name in
//! whichever of a project's reverse zones holds it (what the network service calls).

use std::net::IpAddr;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use photon_resource::{FieldError, Owner, ResourceError};
use serde::{Deserialize, Serialize};

use crate::dns::PtrSynthesis;
use crate::model::{RecordSet, RecordSetSpec, Zone, ZoneSpec};
use crate::store::Zones;

/// A prefix may need at most this many zones (a /17 needs 128 /24 zones).
const MAX_ZONES: usize = 256;

/// What makes a zone a reverse zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReverseSpec {
    /// The subnet (`10.1.2.0/24`, `2001:db8::/48`).
    pub cidr: String,
    /// Names for addresses with no PTR of their own (`ip-{ip}.example.com.`); none: such
    /// addresses are NXDOMAIN.
    #[serde(default)]
    pub ptr_pattern: Option<String>,
}

/// `POST .../reverse-zones`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReverse {
    pub cidr: String,
    #[serde(default)]
    pub ptr_pattern: Option<String>,
    #[serde(default)]
    pub ttl: Option<u32>,
    #[serde(default)]
    pub nameservers: Vec<String>,
}

/// `PUT .../reverse-zones/addresses/{ip}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterAddress {
    /// The name the address has (`vm1.example.com.`).
    pub name: String,
    #[serde(default = "default_ptr_ttl")]
    pub ttl: u32,
}

fn default_ptr_ttl() -> u32 {
    300
}

/// The subnet, checked: its host bits clear, and small enough a prefix to make zones of.
pub fn network(field: &str, cidr: &str) -> Result<IpNet, FieldError> {
    let net: IpNet = cidr.trim().parse().map_err(|e| FieldError::new(field, format!("{cidr:?} is not a CIDR: {e}")))?;
    if net.trunc() != net {
        return Err(FieldError::new(field, format!("{cidr} has host bits set; the subnet is {}", net.trunc())));
    }
    let (unit, max) = match net {
        IpNet::V4(_) => (8, 24),
        IpNet::V6(_) => (4, 124),
    };
    if net.prefix_len() > max {
        return Err(FieldError::new(
            field,
            format!("a /{} is smaller than a reverse zone can be (at most /{max}); create the zone of its /{max}", net.prefix_len()),
        ));
    }
    let boundary = net.prefix_len().div_ceil(unit) * unit;
    let count = 1usize << (boundary - net.prefix_len());
    if count > MAX_ZONES {
        return Err(FieldError::new(field, format!("{cidr} would need {count} zones")));
    }
    Ok(net)
}

/// The reverse zones of `net`, each with the part of `net` it covers.
pub fn zones_of(net: IpNet) -> Vec<(Name, IpNet)> {
    let unit = if net.addr().is_ipv4() { 8 } else { 4 };
    let boundary = net.prefix_len().div_ceil(unit) * unit;
    let parts: Vec<IpNet> = match net.subnets(boundary) {
        Ok(subnets) => subnets.collect(),
        Err(_) => vec![net],
    };
    parts.into_iter().map(|part| (arpa_name(part), part)).collect()
}

/// The reverse name of a network on a label boundary (`2.1.10.in-addr.arpa.`).
fn arpa_name(net: IpNet) -> Name {
    let text = match net {
        IpNet::V4(v4) => {
            let octets = v4.network().octets();
            let labels: Vec<String> = octets[..(v4.prefix_len() / 8) as usize].iter().rev().map(|o| o.to_string()).collect();
            format!("{}.in-addr.arpa.", labels.join("."))
        }
        IpNet::V6(v6) => {
            let nibbles: Vec<String> = v6
                .network()
                .octets()
                .iter()
                .flat_map(|b| [b >> 4, b & 0xf])
                .take((v6.prefix_len() / 4) as usize)
                .map(|n| format!("{n:x}"))
                .collect();
            let reversed: Vec<&str> = nibbles.iter().rev().map(String::as_str).collect();
            format!("{}.ip6.arpa.", reversed.join("."))
        }
    };
    let text = text.replace("..", ".").trim_start_matches('.').to_string();
    text.parse().unwrap_or_else(|_| Name::root())
}

/// The synthesis a stored zone asks for, if it is a reverse zone with a pattern.
pub fn synthesis(zone: &Zone) -> Option<PtrSynthesis> {
    let reverse = zone.spec.reverse.as_ref()?;
    let pattern = reverse.ptr_pattern.clone()?;
    let net = network("reverse.cidr", &reverse.cidr).ok()?;
    let origin = zone.spec.origin();
    // The part of the subnet this zone covers.
    let part = zones_of(net).into_iter().find(|(name, _)| *name == origin).map(|(_, part)| part)?;
    Some(PtrSynthesis { network: part, pattern, ttl: zone.spec.soa.as_ref().map_or(300, |s| s.minimum.max(60)) })
}

/// Creates the reverse zones of a subnet for `owner`; all or none.
pub async fn create(zones: &Zones, owner: &Owner, request: CreateReverse) -> Result<Vec<Zone>, ResourceError> {
    let net = network("cidr", &request.cidr)?;
    if let Some(pattern) = &request.ptr_pattern {
        PtrSynthesis::check(net, pattern).map_err(|e| FieldError::new("ptr_pattern", e))?;
    }
    let mut created = Vec::new();
    for (name, _) in zones_of(net) {
        let spec = ZoneSpec {
            name: name.to_ascii(),
            ttl: request.ttl.unwrap_or(3600),
            soa: None,
            nameservers: request.nameservers.clone(),
            nameserver_ttl: None,
            reverse: Some(ReverseSpec { cidr: net.to_string(), ptr_pattern: request.ptr_pattern.clone() }),
            secondaries: Vec::new(),
        };
        match zones.create(owner, spec).await {
            Ok(zone) => created.push(zone),
            Err(e) => {
                // All or none: the zones made so far go again.
                for zone in &created {
                    let _ = zones.delete(owner, &zone.spec.name).await;
                }
                return Err(e);
            }
        }
    }
    Ok(created)
}

/// The reverse zone of `owner` holding `ip`, and the address's reverse name.
async fn zone_for(zones: &Zones, owner: &Owner, ip: IpAddr) -> Result<(Zone, Name), ResourceError> {
    let reverse_name = Name::from(ip);
    let (all, _) = zones.list(owner, None, 1000).await?;
    all.into_iter()
        .filter(|z| z.spec.reverse.is_some() && z.spec.origin().zone_of(&reverse_name))
        .max_by_key(|z| z.spec.origin().iter().count())
        .map(|z| (z, reverse_name))
        .ok_or_else(|| ResourceError::NotFound { kind: "reverse zone", name: format!("holding {ip}") })
}

/// Registers the name of one address: the PTR in the project's reverse zone that holds it.
pub async fn register(
    zones: &Zones,
    owner: &Owner,
    ip: &str,
    request: RegisterAddress,
) -> Result<RecordSet, ResourceError> {
    let ip: IpAddr = ip.parse().map_err(|e| FieldError::new("ip", format!("{ip:?} is not an IP address: {e}")))?;
    let (zone, reverse_name) = zone_for(zones, owner, ip).await?;
    let spec = RecordSetSpec { ttl: request.ttl, data: vec![request.name] };
    zones.set_records(owner, &zone.spec.name, &reverse_name.to_ascii(), "PTR", spec).await
}

/// Forgets the name of one address.
pub async fn unregister(zones: &Zones, owner: &Owner, ip: &str) -> Result<(), ResourceError> {
    let ip: IpAddr = ip.parse().map_err(|e| FieldError::new("ip", format!("{ip:?} is not an IP address: {e}")))?;
    let (zone, reverse_name) = zone_for(zones, owner, ip).await?;
    zones.delete_records(owner, &zone.spec.name, &reverse_name.to_ascii(), "PTR").await
}
