//! A service IP: an address of the platform's service range (`ipam.service_cidr`) held for a
//! load balancer's VIP or a Kubernetes-style service, so no two get the same one.

use std::net::Ipv4Addr;

use photon_resource::{FieldError, Kind};
use serde::{Deserialize, Serialize};

use super::{check_description, immutable};

pub struct ServiceIp;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceIpSpec {
    /// Picked from the service range when left out.
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// What holds it ("fiberlb front", "k8shost default/web").
    #[serde(default)]
    pub description: String,
}

impl Kind for ServiceIp {
    type Spec = ServiceIpSpec;
    const NAME: &'static str = "service IP";
    const PATH: &'static [&'static str] = &["serviceips"];

    fn validate(spec: &ServiceIpSpec) -> Result<(), FieldError> {
        check_description(&spec.description)
    }

    fn unique(spec: &ServiceIpSpec) -> Vec<String> {
        spec.address.map(|a| vec![a.to_string()]).unwrap_or_default()
    }

    fn update(new: &mut ServiceIpSpec, current: &ServiceIpSpec) -> Result<(), FieldError> {
        immutable("spec.address", &mut new.address, &current.address)
    }
}
