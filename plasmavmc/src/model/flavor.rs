//! A flavour: a VM's size — virtual CPUs, memory and root disk — named once per project and
//! chosen by name when a VM is created.

use photon_resource::{check_range, FieldError, Kind};
use serde::{Deserialize, Serialize};

use super::check_description;

pub struct Flavor;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlavorSpec {
    pub vcpus: u32,
    pub memory_mib: u64,
    /// The root disk's size; an image's disk larger than this is refused when a VM is created.
    pub disk_gib: u64,
    #[serde(default)]
    pub description: String,
}

impl Kind for Flavor {
    type Spec = FlavorSpec;
    const NAME: &'static str = "flavor";
    const PATH: &'static [&'static str] = &["flavors"];

    fn validate(spec: &FlavorSpec) -> Result<(), FieldError> {
        check_range("spec.vcpus", spec.vcpus, 1..=256)?;
        check_range("spec.memory_mib", spec.memory_mib, 32..=4 * 1024 * 1024)?;
        check_range("spec.disk_gib", spec.disk_gib, 1..=64 * 1024)?;
        check_description(&spec.description)
    }
}
