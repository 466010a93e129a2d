//! What this node's dataplane should be, rebuilt from the resources and the nodes' tunnel
//! addresses on every change: pure, so what a change means is tested without a kernel.
//!
//! A VPC is realised on a node while at least one of its ports is bound there; its ports bound
//! elsewhere are reached through the VXLAN device, their MACs and addresses programmed from
//! here (nothing is learned by flooding).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use photon_resource::{Layout, Owner, Resource};
use serde::de::DeserializeOwned;

use crate::model::floating_ip::FloatingIpSpec;
use crate::model::port::{parse_mac, Binding, PortSpec};
use crate::model::router::RouterSpec;
use crate::model::security_group::RuleSpec;
use crate::model::subnet::SubnetSpec;
use crate::model::vpc::VpcSpec;

/// VXLAN's own overhead over IPv4 (outer IP, UDP, VXLAN and inner Ethernet headers).
pub const VXLAN_OVERHEAD: u32 = 50;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// By VNI: the VPCs this node realises.
    pub vpcs: BTreeMap<u32, VpcPlan>,
    /// Ports bound here that cannot be plugged in, and why (named in logs and `/health`).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VpcPlan {
    pub vni: u32,
    pub owner: Owner,
    pub name: String,
    /// The bridge's MAC, which is every subnet's gateway MAC, the same on every node.
    pub gateway_mac: [u8; 6],
    pub mtu: u32,
    pub subnets: Vec<SubnetPlan>,
    pub local: Vec<LocalPort>,
    pub remote: Vec<RemotePort>,
    /// Each security group of the VPC: its rules (by name).
    pub groups: BTreeMap<String, Vec<(String, RuleSpec)>>,
    /// Each security group's members: the addresses of the VPC's ports in it, on any node.
    pub members: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    /// The way out, on a node with an external interface, when a router routes some of the
    /// VPC's subnets or a floating IP maps to one of its ports here.
    pub external: Option<ExternalPlan>,
}

/// A VPC's uplink to the node: a veth pair, the VPC's end with a transit address unique on the
/// node (its subnets' traffic out is translated to it, then by the node to its own address),
/// and the floating IPs of its ports here (translated in the VPC's namespace, routed by the
/// node to the uplink, answered for on the external network by the node).
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalPlan {
    pub transit: Ipv4Addr,
    /// Subnets routed out with SNAT.
    pub snat: Vec<Ipv4Net>,
    /// (floating IP, the local port's address).
    pub floating: Vec<(Ipv4Addr, Ipv4Addr)>,
}

impl Default for ExternalPlan {
    fn default() -> Self {
        Self { transit: Ipv4Addr::UNSPECIFIED, snat: Vec::new(), floating: Vec::new() }
    }
}

/// Transit addresses come from here (shared address space, RFC 6598: never a tenant's or the
/// external network's), one per VPC with a way out on a node.
pub const TRANSIT: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), 10) {
    Ok(net) => net,
    Err(_) => panic!("a valid prefix"),
};

/// What the plan needs to know of this node.
#[derive(Debug, Clone)]
pub struct ThisNode {
    pub name: String,
    pub underlay_mtu: u32,
    /// Whether the node has an external interface (routers and floating IPs are realised).
    pub external: bool,
    /// Ports' names, when FlashDNS has them (subnets' domains are given by DHCP).
    pub naming: Option<crate::dns::Naming>,
    /// DNS servers for subnets that name none (`dns.servers`).
    pub dns_servers: Vec<Ipv4Addr>,
}

/// The transit address of VPC `vni`: a hash into `TRANSIT`, probed past `taken`.
fn transit(vni: u32, taken: &BTreeSet<Ipv4Addr>) -> Ipv4Addr {
    let size = 1u32 << (32 - TRANSIT.prefix_len());
    let base = u32::from(TRANSIT.network());
    // Host numbers 1 to size-2 (neither the network nor the broadcast address).
    let mut slot = vni.wrapping_mul(2_654_435_761) % (size - 2) + 1;
    loop {
        let ip = Ipv4Addr::from(base + slot);
        if !taken.contains(&ip) {
            return ip;
        }
        slot = slot % (size - 2) + 1;
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubnetPlan {
    pub name: String,
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Whether its ports are answered by DHCP, and with what besides their address.
    pub dhcp: bool,
    pub dns_servers: Vec<Ipv4Addr>,
    pub routes: Vec<(Ipv4Net, Ipv4Addr)>,
    /// The domain its machines' names are in (`<subnet>.<VPC's zone>`), with names on.
    pub domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalPort {
    /// The resource's key in chainfire.
    pub key: String,
    /// The bridge side's name in the VPC's namespace.
    pub device: String,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub binding: Binding,
    pub security_groups: Vec<String>,
    /// Filtered (anti-spoofing and security groups) unless the port turned it off.
    pub port_security: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemotePort {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    /// The tunnel address of the node it runs on.
    pub vtep: Ipv4Addr,
}

/// The gateway MAC of the VPC with `vni`: locally administered, `02:7f:` and the VNI.
pub fn gateway_mac(vni: u32) -> [u8; 6] {
    let v = vni.to_be_bytes();
    [0x02, 0x7f, v[1], v[2], v[3], 0x01]
}

/// The bridge-side name of a port's device: `p` and a hash of its key (15 bytes at most).
pub fn device_name(key: &str) -> String {
    // FNV-1a: stable across releases and processes, unlike the std hasher.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("p{:010x}", hash & 0xff_ffff_ffff)
}

fn decode<S: DeserializeOwned>(value: &[u8]) -> Option<Resource<S>> {
    serde_json::from_slice(value).ok()
}

/// The plan for node `node` from every resource (`items`, by key) and every node's tunnel
/// address.
pub fn build(layout: &Layout, items: &BTreeMap<String, Vec<u8>>, nodes: &BTreeMap<String, Ipv4Addr>, this: &ThisNode) -> Plan {
    let (node, underlay_mtu) = (this.name.as_str(), this.underlay_mtu);
    let mut vpcs: BTreeMap<(Owner, String), (u32, VpcSpec)> = BTreeMap::new();
    let mut subnets: BTreeMap<(Owner, String, String), SubnetSpec> = BTreeMap::new();
    let mut ports: Vec<(String, Owner, String, String, PortSpec)> = Vec::new();
    // (owner, VPC) → subnets routed out with SNAT.
    let mut routed: BTreeMap<(Owner, String), BTreeSet<String>> = BTreeMap::new();
    // (owner, VPC, subnet, port) → floating IP.
    let mut floating: BTreeMap<(Owner, String, String, String), Ipv4Addr> = BTreeMap::new();
    // (owner, VPC) → group → rules.
    let mut groups: BTreeMap<(Owner, String), BTreeMap<String, Vec<(String, RuleSpec)>>> = BTreeMap::new();
    for (key, value) in items {
        let Some((owner, path, names)) = layout.parse(key) else { continue };
        match (path.as_slice(), names.as_slice()) {
            (["vpcs"], [vpc]) => {
                if let Some(r) = decode::<VpcSpec>(value) {
                    if let Some(vni) = r.spec.vni {
                        vpcs.insert((owner, vpc.to_string()), (vni, r.spec));
                    }
                }
            }
            (["vpcs", "subnets"], [vpc, subnet]) => {
                if let Some(r) = decode::<SubnetSpec>(value) {
                    subnets.insert((owner, vpc.to_string(), subnet.to_string()), r.spec);
                }
            }
            (["vpcs", "subnets", "ports"], [vpc, subnet, _]) => {
                if let Some(r) = decode::<PortSpec>(value) {
                    ports.push((key.clone(), owner, vpc.to_string(), subnet.to_string(), r.spec));
                }
            }
            (["vpcs", "routers"], [vpc, _]) => {
                if let Some(r) = decode::<RouterSpec>(value) {
                    if r.spec.snat {
                        routed.entry((owner, vpc.to_string())).or_default().extend(r.spec.subnets);
                    }
                }
            }
            (["floatingips"], [_]) => {
                if let Some(r) = decode::<FloatingIpSpec>(value) {
                    if let (Some(address), Some(port)) = (r.spec.address, r.spec.port) {
                        floating.insert((owner, port.vpc, port.subnet, port.port), address);
                    }
                }
            }
            (["vpcs", "securitygroups"], [vpc, group]) => {
                groups.entry((owner, vpc.to_string())).or_default().entry(group.to_string()).or_default();
            }
            (["vpcs", "securitygroups", "rules"], [vpc, group, rule]) => {
                if let Some(r) = decode::<RuleSpec>(value) {
                    let rules = groups.entry((owner, vpc.to_string())).or_default().entry(group.to_string()).or_default();
                    rules.push((rule.to_string(), r.spec));
                }
            }
            _ => {}
        }
    }

    let mut plan = Plan::default();
    let mtu = underlay_mtu.saturating_sub(VXLAN_OVERHEAD);
    let mut members: BTreeMap<(Owner, String), BTreeMap<String, BTreeSet<Ipv4Addr>>> = BTreeMap::new();
    for (_, owner, vpc, _, spec) in &ports {
        let (Some(ip), true) = (spec.ip, spec.port_security) else { continue };
        for group in &spec.security_groups {
            members.entry((owner.clone(), vpc.clone())).or_default().entry(group.clone()).or_default().insert(ip);
        }
    }
    for (key, owner, vpc, subnet, spec) in ports {
        let Some((vni, _)) = vpcs.get(&(owner.clone(), vpc.clone())) else { continue };
        let Some(subnet_spec) = subnets.get(&(owner.clone(), vpc.clone(), subnet.clone())) else { continue };
        let (Some(ip), Some(mac), Some(binding)) = (spec.ip, spec.mac.as_deref(), spec.binding.as_ref()) else { continue };
        let Ok(mac) = parse_mac(mac) else { continue };
        let entry = plan.vpcs.entry(*vni).or_insert_with(|| VpcPlan {
            vni: *vni,
            owner: owner.clone(),
            name: vpc.clone(),
            gateway_mac: gateway_mac(*vni),
            mtu,
            subnets: Vec::new(),
            local: Vec::new(),
            remote: Vec::new(),
            groups: groups.get(&(owner.clone(), vpc.clone())).cloned().unwrap_or_default(),
            members: members.get(&(owner.clone(), vpc.clone())).cloned().unwrap_or_default(),
            external: None,
        });
        if binding.node == node {
            let port_name = key.rsplit('/').next().unwrap_or_default().to_string();
            if let Some(address) = floating.get(&(owner.clone(), vpc.clone(), subnet.clone(), port_name)) {
                entry.external.get_or_insert_with(ExternalPlan::default).floating.push((*address, ip));
            }
            entry.local.push(LocalPort {
                device: device_name(&key),
                key,
                mac,
                ip,
                subnet: subnet_spec.cidr,
                gateway: subnet_spec.gateway(),
                binding: binding.clone(),
                security_groups: spec.security_groups.clone(),
                port_security: spec.port_security,
            });
        } else {
            match nodes.get(&binding.node) {
                Some(vtep) => entry.remote.push(RemotePort { mac, ip, vtep: *vtep }),
                None => plan.problems.push(format!("port {key}: node {} has not registered a tunnel address", binding.node)),
            }
        }
    }
    // Only VPCs with a port here are realised; each gets every subnet of its VPC (the gateway
    // answers for all of them).
    plan.vpcs.retain(|_, vpc| !vpc.local.is_empty());
    for vpc in plan.vpcs.values_mut() {
        for ((owner, vpc_name, name), spec) in &subnets {
            if *owner == vpc.owner && *vpc_name == vpc.name {
                vpc.subnets.push(SubnetPlan {
                    name: name.clone(),
                    cidr: spec.cidr,
                    gateway: spec.gateway(),
                    dhcp: spec.dhcp,
                    dns_servers: if spec.dns_servers.is_empty() { this.dns_servers.clone() } else { spec.dns_servers.clone() },
                    routes: spec.routes.iter().map(|r| (r.destination, r.nexthop)).collect(),
                    domain: this.naming.as_ref().and_then(|n| n.subnet_domain(owner, vpc_name, name)),
                });
            }
        }
        vpc.remote.sort();
        let snat: Vec<Ipv4Net> = vpc
            .subnets
            .iter()
            .filter(|s| routed.get(&(vpc.owner.clone(), vpc.name.clone())).is_some_and(|r| r.contains(&s.name)))
            .map(|s| s.cidr)
            .collect();
        if !snat.is_empty() {
            vpc.external.get_or_insert_with(ExternalPlan::default).snat = snat;
        }
        if !this.external {
            vpc.external = None;
        }
    }
    let mut taken = BTreeSet::new();
    for vpc in plan.vpcs.values_mut() {
        if let Some(external) = &mut vpc.external {
            external.transit = transit(vpc.vni, &taken);
            taken.insert(external.transit);
            external.floating.sort();
        }
    }
    plan
}

#[cfg(test)]
mod tests;
