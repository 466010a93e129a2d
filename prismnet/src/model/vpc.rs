//! A VPC: a tenant's private IPv4 space, one VXLAN segment (its VNI) across every node it
//! reaches. Two VPCs may use the same addresses; they never see each other.

use ipnet::Ipv4Net;
use photon_resource::{FieldError, Kind};
use serde::{Deserialize, Serialize};

use super::{check_description, immutable};
use photon_resource::check_range;

pub struct Vpc;

/// VNIs the server assigns from (below: left to operators' own segments).
pub const VNI_RANGE: std::ops::RangeInclusive<u32> = 4096..=16_000_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VpcSpec {
    /// The VPC's address space; its subnets lie inside it. A prefix of /8 to /28.
    pub cidr: Ipv4Net,
    /// The VXLAN network identifier; assigned when left out, and fixed for the VPC's life.
    #[serde(default)]
    pub vni: Option<u32>,
    #[serde(default)]
    pub description: String,
}

impl Kind for Vpc {
    type Spec = VpcSpec;
    const NAME: &'static str = "VPC";
    const PATH: &'static [&'static str] = &["vpcs"];

    fn validate(spec: &VpcSpec) -> Result<(), FieldError> {
        check_range("spec.cidr prefix length", spec.cidr.prefix_len(), 8..=28)?;
        if spec.cidr.network() != spec.cidr.addr() {
            return Err(FieldError::new("spec.cidr", format!("{} has host bits set; the network is {}", spec.cidr, spec.cidr.trunc())));
        }
        let first = spec.cidr.network();
        if first.is_loopback() || first.is_multicast() || first.is_broadcast() || first.is_unspecified() || first.is_link_local() {
            return Err(FieldError::new("spec.cidr", format!("{} is not a unicast range a VPC can use", spec.cidr)));
        }
        if let Some(vni) = spec.vni {
            check_range("spec.vni", vni, 1..=16_777_215)?;
        }
        check_description(&spec.description)
    }

    /// A VNI is one segment across the whole cluster, whoever owns it.
    fn unique(spec: &VpcSpec) -> Vec<String> {
        spec.vni.map(|vni| vec![vni.to_string()]).unwrap_or_default()
    }

    fn update(new: &mut VpcSpec, current: &VpcSpec) -> Result<(), FieldError> {
        immutable("spec.vni", &mut new.vni, &current.vni)?;
        if new.cidr != current.cidr {
            return Err(FieldError::new("spec.cidr", format!("cannot change ({} to {})", current.cidr, new.cidr)));
        }
        Ok(())
    }
}
