//! A load balancer: the virtual address (VIP) its listeners take traffic on.

use std::net::IpAddr;

use photon_resource::{FieldError, Kind};
use serde::{Deserialize, Serialize};

pub struct LoadBalancer;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSpec {
    /// The address listeners bind on the fiberlb nodes (held by one node at a time, moved on
    /// failure). Unset: every address of the node.
    #[serde(default)]
    pub vip: Option<IpAddr>,
    #[serde(default)]
    pub description: String,
}

impl Kind for LoadBalancer {
    type Spec = LoadBalancerSpec;
    const NAME: &'static str = "load balancer";
    const PATH: &'static [&'static str] = &["loadbalancers"];

    fn validate(spec: &LoadBalancerSpec) -> Result<(), FieldError> {
        if spec.description.len() > 256 {
            return Err(FieldError::new("spec.description", "at most 256 bytes"));
        }
        if let Some(vip) = spec.vip {
            if vip.is_unspecified() || vip.is_multicast() {
                return Err(FieldError::new("spec.vip", format!("{vip} cannot be a load balancer's address")));
            }
        }
        Ok(())
    }

    /// An address serves one load balancer, whichever project it belongs to.
    fn unique(spec: &LoadBalancerSpec) -> Vec<String> {
        spec.vip.map(|vip| vec![vip.to_string()]).unwrap_or_default()
    }
}
