//! A floating IP: an address of the external network mapped to one port; traffic to it is
//! translated to the port's address on the node the port runs on, and the port's traffic out
//! leaves from it.

use std::net::Ipv4Addr;

use photon_resource::{check_name, FieldError, Kind};
use serde::{Deserialize, Serialize};

use super::{check_description, immutable};

pub struct FloatingIp;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpSpec {
    /// From the external pool (`external.floating_cidr`); picked when left out.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// The port it maps to; none: held, not mapped.
    #[serde(default)]
    pub port: Option<PortRef>,
    #[serde(default)]
    pub description: String,
}

/// A port of the same project.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortRef {
    pub vpc: String,
    pub subnet: String,
    pub port: String,
}

impl Kind for FloatingIp {
    type Spec = FloatingIpSpec;
    const NAME: &'static str = "floating IP";
    const PATH: &'static [&'static str] = &["floatingips"];

    fn validate(spec: &FloatingIpSpec) -> Result<(), FieldError> {
        if let Some(port) = &spec.port {
            check_name("spec.port.vpc", &port.vpc)?;
            check_name("spec.port.subnet", &port.subnet)?;
            check_name("spec.port.port", &port.port)?;
        }
        check_description(&spec.description)
    }

    /// An external address maps to one port, whoever owns it.
    fn unique(spec: &FloatingIpSpec) -> Vec<String> {
        spec.address.map(|a| vec![a.to_string()]).unwrap_or_default()
    }

    fn update(new: &mut FloatingIpSpec, current: &FloatingIpSpec) -> Result<(), FieldError> {
        immutable("spec.address", &mut new.address, &current.address)
    }
}
