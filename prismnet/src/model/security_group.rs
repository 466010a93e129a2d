//! Security groups: stateful filters on ports. A port in no group takes no new traffic in and
//! sends anything out; each group's rules allow more. Replies of an allowed flow always pass
//! (connection tracking).

use ipnet::Ipv4Net;
use photon_resource::{check_name, FieldError, Kind};
use serde::{Deserialize, Serialize};

use super::check_description;

pub struct SecurityGroup;
pub struct SecurityGroupRule;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupSpec {
    #[serde(default)]
    pub description: String,
}

impl Kind for SecurityGroup {
    type Spec = SecurityGroupSpec;
    const NAME: &'static str = "security group";
    const PATH: &'static [&'static str] = &["vpcs", "securitygroups"];

    fn validate(spec: &SecurityGroupSpec) -> Result<(), FieldError> {
        check_description(&spec.description)
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Traffic into the group's ports.
    Ingress,
    /// Traffic out of the group's ports.
    Egress,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Any,
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub direction: Direction,
    #[serde(default)]
    pub protocol: Protocol,
    /// TCP and UDP: the first port of the range (with `port_max`); none: every port.
    #[serde(default)]
    pub port_min: Option<u16>,
    #[serde(default)]
    pub port_max: Option<u16>,
    /// The other end's addresses; with neither this nor `remote_group`, anywhere.
    #[serde(default)]
    pub remote_cidr: Option<Ipv4Net>,
    /// The other end is a port of this group (of the same VPC), wherever it runs.
    #[serde(default)]
    pub remote_group: Option<String>,
    #[serde(default)]
    pub description: String,
}

impl RuleSpec {
    /// The port range, if the rule has one.
    pub fn ports(&self) -> Option<(u16, u16)> {
        match (self.port_min, self.port_max) {
            (None, None) => None,
            (Some(min), None) => Some((min, min)),
            (None, Some(max)) => Some((max, max)),
            (Some(min), Some(max)) => Some((min, max)),
        }
    }
}

impl Kind for SecurityGroupRule {
    type Spec = RuleSpec;
    const NAME: &'static str = "security group rule";
    const PATH: &'static [&'static str] = &["vpcs", "securitygroups", "rules"];

    fn validate(spec: &RuleSpec) -> Result<(), FieldError> {
        if let Some((min, max)) = spec.ports() {
            if !matches!(spec.protocol, Protocol::Tcp | Protocol::Udp) {
                return Err(FieldError::new("spec.port_min", "port ranges apply to tcp and udp only"));
            }
            if min == 0 {
                return Err(FieldError::new("spec.port_min", "ports start at 1"));
            }
            if min > max {
                return Err(FieldError::new("spec.port_max", format!("{max} is below port_min {min}")));
            }
        }
        if let Some(cidr) = spec.remote_cidr {
            if cidr.network() != cidr.addr() {
                return Err(FieldError::new("spec.remote_cidr", format!("{cidr} has host bits set; the network is {}", cidr.trunc())));
            }
            if spec.remote_group.is_some() {
                return Err(FieldError::new("spec.remote_group", "give remote_cidr or remote_group, not both"));
            }
        }
        if let Some(group) = &spec.remote_group {
            check_name("spec.remote_group", group)?;
        }
        check_description(&spec.description)
    }
}
