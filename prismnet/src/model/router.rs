//! A router: a VPC's way out. The subnets attached reach the external network through the
//! node their port runs on (distributed), their addresses translated to the node's (SNAT).

use photon_resource::{check_name, FieldError, Kind};
use serde::{Deserialize, Serialize};

use super::check_description;

pub struct Router;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    /// Names of the VPC's subnets routed out.
    #[serde(default)]
    pub subnets: Vec<String>,
    /// Translate the subnets' addresses to the node's external one on the way out.
    #[serde(default = "yes")]
    pub snat: bool,
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}

impl Kind for Router {
    type Spec = RouterSpec;
    const NAME: &'static str = "router";
    const PATH: &'static [&'static str] = &["vpcs", "routers"];

    fn validate(spec: &RouterSpec) -> Result<(), FieldError> {
        if spec.subnets.len() > 64 {
            return Err(FieldError::new("spec.subnets", format!("{} subnets; at most 64", spec.subnets.len())));
        }
        for (i, subnet) in spec.subnets.iter().enumerate() {
            check_name(&format!("spec.subnets[{i}]"), subnet)?;
        }
        check_description(&spec.description)
    }
}
