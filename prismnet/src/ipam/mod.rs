//! IPAM and the other values the server picks: each kind's `Assign` (photon-resource) fills
//! what a create leaves out — a VPC's VNI, a subnet's gateway, a port's address and MAC, a
//! floating or service IP from its pool — and checks what needs the store: a subnet inside its
//! VPC and apart from its siblings, a port's address inside its subnet, names that must exist.
//! Every value picked is also a claim, so concurrent creates never get the same one.

pub mod pick;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use photon_resource::assign::Assigning;
use photon_resource::{Assign, Placing, ResourceError, Resources};

use crate::model::floating_ip::FloatingIpSpec;
use crate::model::port::{derived_mac, format_mac, parse_mac, PortSpec, MAC_PREFIX};
use crate::model::router::RouterSpec;
use crate::model::security_group::RuleSpec;
use crate::model::service_ip::ServiceIpSpec;
use crate::model::subnet::{first_host, SubnetSpec};
use crate::model::vpc::{VpcSpec, VNI_RANGE};
use crate::model::{FloatingIp, Port, Router, SecurityGroup, SecurityGroupRule, ServiceIp, Subnet, Vpc};

/// The pools the platform hands addresses out of (from the config).
#[derive(Debug, Clone, Default)]
pub struct Pools {
    /// Floating IPs: addresses of the external network.
    pub floating: Option<Ipv4Net>,
    /// Service IPs: load balancers' and services' addresses.
    pub service: Option<Ipv4Net>,
}

/// Registers every assigner on `resources`.
pub fn assigners(resources: Resources, pools: Pools) -> Resources {
    resources
        .with_assigner::<Vpc>(Vnis)
        .with_assigner::<Subnet>(Subnets)
        .with_assigner::<Port>(Ports)
        .with_assigner::<SecurityGroupRule>(Rules)
        .with_assigner::<Router>(Routers)
        .with_assigner::<FloatingIp>(Floating(pools.floating))
        .with_assigner::<ServiceIp>(Service(pools.service))
}

/// A random seed for picking (ring's system randomness).
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u64::from_le_bytes(bytes)
}

fn invalid(field: &str, message: impl Into<String>) -> ResourceError {
    ResourceError::Invalid { field: field.to_string(), message: message.into() }
}

fn addresses(values: Vec<String>) -> HashSet<Ipv4Addr> {
    values.iter().filter_map(|v| v.parse().ok()).collect()
}

struct Vnis;

impl Assign<Vpc> for Vnis {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut VpcSpec) -> Assigning<'a> {
        Box::pin(async move {
            if spec.vni.is_none() {
                let taken: HashSet<u32> = at.claimed_unique::<Vpc>().await?.iter().filter_map(|v| v.parse().ok()).collect();
                let vni = pick::pick(*VNI_RANGE.start(), *VNI_RANGE.end(), &taken, seed())
                    .ok_or_else(|| ResourceError::Exhausted("every VXLAN id is taken".into()))?;
                spec.vni = Some(vni);
            }
            Ok(())
        })
    }
}

struct Subnets;

impl Assign<Subnet> for Subnets {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut SubnetSpec) -> Assigning<'a> {
        Box::pin(async move {
            let vpc = at.resources.get::<Vpc>(at.owner, &[], &at.parents[0]).await?;
            if !vpc.spec.cidr.contains(&spec.cidr) {
                return Err(invalid("spec.cidr", format!("{} is outside the VPC's range {}", spec.cidr, vpc.spec.cidr)));
            }
            for sibling in at.resources.list_all::<Subnet>(at.owner, at.parents).await? {
                let other = sibling.spec.cidr;
                if other.contains(&spec.cidr.network()) || spec.cidr.contains(&other.network()) {
                    let name = sibling.metadata.name;
                    return Err(invalid("spec.cidr", format!("{} overlaps subnet {name} ({other})", spec.cidr)));
                }
            }
            spec.gateway.get_or_insert_with(|| first_host(spec.cidr));
            Ok(())
        })
    }
}

struct Ports;

impl Ports {
    /// Each security group the port names must exist in its VPC.
    async fn check_groups(at: &Placing<'_>, spec: &PortSpec) -> Result<(), ResourceError> {
        if spec.security_groups.is_empty() {
            return Ok(());
        }
        let vpc = &at.parents[..1];
        let groups: HashSet<String> =
            at.resources.list_all::<SecurityGroup>(at.owner, vpc).await?.into_iter().map(|g| g.metadata.name).collect();
        for (i, group) in spec.security_groups.iter().enumerate() {
            if !groups.contains(group) {
                return Err(invalid(&format!("spec.security_groups[{i}]"), format!("VPC {} has no security group {group}", vpc[0])));
            }
        }
        Ok(())
    }
}

impl Assign<Port> for Ports {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut PortSpec) -> Assigning<'a> {
        Box::pin(async move {
            let subnet = at.resources.get::<Subnet>(at.owner, &at.parents[..1], &at.parents[1]).await?;
            let subnet = subnet.spec;
            match spec.ip {
                Some(ip) => subnet.usable(ip).map_err(|e| invalid("spec.ip", e))?,
                None => {
                    let mut taken = addresses(at.claimed_in_parent::<Port>().await?);
                    taken.insert(subnet.gateway());
                    let ip = pick::pick_address(subnet.cidr, &taken, seed()).ok_or_else(|| {
                        ResourceError::Exhausted(format!("subnet {} ({}) has no free address", at.parents[1], subnet.cidr))
                    })?;
                    spec.ip = Some(ip);
                }
            }
            match &spec.mac {
                Some(mac) if parse_mac(mac).is_ok_and(|bytes| bytes[..2] == MAC_PREFIX) => {
                    return Err(invalid("spec.mac", format!("{mac} is in PrismNET's own range 02:7e:...; leave the MAC out to have one derived")));
                }
                Some(_) => {}
                None => spec.mac = spec.ip.map(|ip| format_mac(derived_mac(ip))),
            }
            Self::check_groups(&at, spec).await
        })
    }

    fn updating<'a>(&'a self, at: Placing<'a>, spec: &'a mut PortSpec) -> Assigning<'a> {
        Box::pin(async move { Self::check_groups(&at, spec).await })
    }
}

struct Rules;

impl Rules {
    async fn check(at: &Placing<'_>, spec: &RuleSpec) -> Result<(), ResourceError> {
        if let Some(group) = &spec.remote_group {
            let vpc = &at.parents[..1];
            if at.resources.get::<SecurityGroup>(at.owner, vpc, group).await.is_err() {
                return Err(invalid("spec.remote_group", format!("VPC {} has no security group {group}", vpc[0])));
            }
        }
        Ok(())
    }
}

impl Assign<SecurityGroupRule> for Rules {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut RuleSpec) -> Assigning<'a> {
        Box::pin(async move { Self::check(&at, spec).await })
    }

    fn updating<'a>(&'a self, at: Placing<'a>, spec: &'a mut RuleSpec) -> Assigning<'a> {
        Box::pin(async move { Self::check(&at, spec).await })
    }
}

struct Routers;

impl Routers {
    async fn check(at: &Placing<'_>, spec: &RouterSpec) -> Result<(), ResourceError> {
        let subnets: HashSet<String> =
            at.resources.list_all::<Subnet>(at.owner, at.parents).await?.into_iter().map(|s| s.metadata.name).collect();
        for (i, subnet) in spec.subnets.iter().enumerate() {
            if !subnets.contains(subnet) {
                return Err(invalid(&format!("spec.subnets[{i}]"), format!("VPC {} has no subnet {subnet}", at.parents[0])));
            }
        }
        Ok(())
    }
}

impl Assign<Router> for Routers {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut RouterSpec) -> Assigning<'a> {
        Box::pin(async move { Self::check(&at, spec).await })
    }

    fn updating<'a>(&'a self, at: Placing<'a>, spec: &'a mut RouterSpec) -> Assigning<'a> {
        Box::pin(async move { Self::check(&at, spec).await })
    }
}

/// An address from `pool` for a top-level kind claimed across projects: the one given (which
/// must be in the pool) or a free one.
fn from_pool(
    pool: Option<Ipv4Net>,
    setting: &str,
    address: &mut Option<Ipv4Addr>,
    taken: Vec<String>,
) -> Result<(), ResourceError> {
    let Some(pool) = pool else {
        return Err(ResourceError::Precondition(format!("no pool to take the address from: the operator sets {setting}")));
    };
    match *address {
        Some(given) => {
            let (lo, hi) = pick::hosts(pool);
            if !(lo..=hi).contains(&u32::from(given)) {
                return Err(invalid("spec.address", format!("{given} is not in the pool {pool}")));
            }
        }
        None => {
            let picked = pick::pick_address(pool, &addresses(taken), seed())
                .ok_or_else(|| ResourceError::Exhausted(format!("every address of the pool {pool} is taken")))?;
            *address = Some(picked);
        }
    }
    Ok(())
}

struct Floating(Option<Ipv4Net>);

impl Floating {
    async fn check_port(at: &Placing<'_>, spec: &FloatingIpSpec) -> Result<(), ResourceError> {
        if let Some(port) = &spec.port {
            let parents = [port.vpc.clone(), port.subnet.clone()];
            if at.resources.get::<Port>(at.owner, &parents, &port.port).await.is_err() {
                return Err(invalid("spec.port", format!("no port {}/{}/{} in this project", port.vpc, port.subnet, port.port)));
            }
        }
        Ok(())
    }
}

impl Assign<FloatingIp> for Floating {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut FloatingIpSpec) -> Assigning<'a> {
        Box::pin(async move {
            let taken = if spec.address.is_none() { at.claimed_unique::<FloatingIp>().await? } else { Vec::new() };
            from_pool(self.0, "external.floating_cidr", &mut spec.address, taken)?;
            Self::check_port(&at, spec).await
        })
    }

    fn updating<'a>(&'a self, at: Placing<'a>, spec: &'a mut FloatingIpSpec) -> Assigning<'a> {
        Box::pin(async move { Self::check_port(&at, spec).await })
    }
}

struct Service(Option<Ipv4Net>);

impl Assign<ServiceIp> for Service {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut ServiceIpSpec) -> Assigning<'a> {
        Box::pin(async move {
            let taken = if spec.address.is_none() { at.claimed_unique::<ServiceIp>().await? } else { Vec::new() };
            from_pool(self.0, "ipam.service_cidr", &mut spec.address, taken)
        })
    }
}
