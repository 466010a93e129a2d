//! A subnet: a range of a VPC's addresses with a gateway (answered on every node, a
//! distributed gateway), DHCP, DNS servers and static routes for its ports.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use photon_resource::{FieldError, Kind};
use serde::{Deserialize, Serialize};

use super::{check_description, immutable};
use photon_resource::check_range;

pub struct Subnet;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubnetSpec {
    /// Inside the VPC's range and apart from its other subnets; a prefix of /8 to /29.
    pub cidr: Ipv4Net,
    /// The ports' default gateway: the first host address when left out.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Whether ports get their address by DHCP.
    #[serde(default = "yes")]
    pub dhcp: bool,
    /// Given to ports by DHCP, at most 4.
    #[serde(default)]
    pub dns_servers: Vec<Ipv4Addr>,
    /// Given to ports by DHCP (classless static routes), at most 16.
    #[serde(default)]
    pub routes: Vec<StaticRoute>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    pub destination: Ipv4Net,
    /// An address of this subnet.
    pub nexthop: Ipv4Addr,
}

fn yes() -> bool {
    true
}

impl SubnetSpec {
    /// Whether `ip` is an address a port of this subnet may have: inside, neither the network
    /// nor the broadcast address, not the gateway.
    pub fn usable(&self, ip: Ipv4Addr) -> Result<(), String> {
        if !self.cidr.contains(&ip) {
            return Err(format!("{ip} is outside the subnet {}", self.cidr));
        }
        if ip == self.cidr.network() || ip == self.cidr.broadcast() {
            return Err(format!("{ip} is the subnet's network or broadcast address"));
        }
        if Some(ip) == self.gateway {
            return Err(format!("{ip} is the subnet's gateway"));
        }
        Ok(())
    }

    /// The gateway, as assigned on create.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway.unwrap_or_else(|| first_host(self.cidr))
    }
}

pub fn first_host(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()).saturating_add(1))
}

impl Kind for Subnet {
    type Spec = SubnetSpec;
    const NAME: &'static str = "subnet";
    const PATH: &'static [&'static str] = &["vpcs", "subnets"];

    fn validate(spec: &SubnetSpec) -> Result<(), FieldError> {
        check_range("spec.cidr prefix length", spec.cidr.prefix_len(), 8..=29)?;
        if spec.cidr.network() != spec.cidr.addr() {
            return Err(FieldError::new("spec.cidr", format!("{} has host bits set; the network is {}", spec.cidr, spec.cidr.trunc())));
        }
        if let Some(gateway) = spec.gateway {
            let inside = SubnetSpec { gateway: None, ..spec.clone() };
            inside.usable(gateway).map_err(|e| FieldError::new("spec.gateway", e))?;
        }
        if spec.dns_servers.len() > 4 {
            return Err(FieldError::new("spec.dns_servers", format!("{} servers; at most 4", spec.dns_servers.len())));
        }
        for (i, server) in spec.dns_servers.iter().enumerate() {
            if server.is_unspecified() || server.is_multicast() || server.is_broadcast() {
                return Err(FieldError::new(format!("spec.dns_servers[{i}]"), format!("{server} is not a server's address")));
            }
        }
        if spec.routes.len() > 16 {
            return Err(FieldError::new("spec.routes", format!("{} routes; at most 16", spec.routes.len())));
        }
        for (i, route) in spec.routes.iter().enumerate() {
            if route.destination.network() != route.destination.addr() {
                return Err(FieldError::new(format!("spec.routes[{i}].destination"), format!("{} has host bits set", route.destination)));
            }
            if !spec.cidr.contains(&route.nexthop) {
                return Err(FieldError::new(
                    format!("spec.routes[{i}].nexthop"),
                    format!("{} is outside the subnet {}", route.nexthop, spec.cidr),
                ));
            }
        }
        check_description(&spec.description)
    }

    fn update(new: &mut SubnetSpec, current: &SubnetSpec) -> Result<(), FieldError> {
        if new.cidr != current.cidr {
            return Err(FieldError::new("spec.cidr", format!("cannot change ({} to {}); create a new subnet instead", current.cidr, new.cidr)));
        }
        immutable("spec.gateway", &mut new.gateway, &current.gateway)
    }
}
