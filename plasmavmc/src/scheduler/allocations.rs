//! What each node has granted: `/photoncloud/plasmavmc/allocations/<node>` lists the VMs placed
//! there with their vCPUs and memory. A placement rewrites the record on the key's revision in
//! the same transaction as the VM's status, so two placements on one node at once cannot both
//! succeed: the second sees the new total and chooses again (no node is ever overcommitted).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::status::Grant;
use crate::model::ROOT;

pub fn prefix() -> String {
    format!("{ROOT}/allocations/")
}

/// One VM's share of a node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Held {
    /// The VM's key (to find it again).
    pub key: String,
    pub grant: Grant,
    /// `<org>/<project>/<group>` of its anti-affinity group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A node's record: its VMs by uid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Allocation {
    pub vms: BTreeMap<String, Held>,
}

impl Allocation {
    /// vCPUs and MiB granted in all.
    pub fn totals(&self) -> (u64, u64) {
        self.vms.values().fold((0, 0), |(c, m), h| (c + u64::from(h.grant.vcpus), m + h.grant.memory_mib))
    }
}
