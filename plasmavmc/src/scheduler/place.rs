//! Where a VM goes, decided without side effects: filter (node alive, architecture, labels,
//! free vCPUs and memory after overcommit, anti-affinity), then score (spread: the node left
//! with the most free memory; pack: the least). When no node fits, the reason names every
//! node and why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use photon_resource::Resource;

use super::allocations::Allocation;
use crate::model::flavor::FlavorSpec;
use crate::model::image::ImageSpec;
use crate::model::vm::VmSpec;
use crate::nodes::NodeView;

/// How the scheduler chooses among nodes that fit (`[scheduler] policy`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Even load: the node with the most memory left.
    #[default]
    Spread,
    /// Fewest nodes busy: the node with the least memory left that still fits.
    Pack,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub strategy: Strategy,
    /// Virtual CPUs granted per physical one.
    pub cpu_overcommit: f64,
    /// Memory granted per MiB the node has (1.0: none).
    pub memory_overcommit: f64,
}

/// What a VM asks of a node.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub architecture: &'a str,
    pub selector: &'a BTreeMap<String, String>,
    /// `<org>/<project>/<group>`: no two VMs of it on one node.
    pub group: Option<String>,
}

impl<'a> Request<'a> {
    /// What VM `vm` of `flavor` and `image` needs of a node.
    pub fn of(vm: &'a Resource<VmSpec>, flavor: &FlavorSpec, image: &'a ImageSpec) -> Self {
        let owner = &vm.metadata;
        Self {
            vcpus: flavor.vcpus,
            memory_mib: flavor.memory_mib,
            architecture: &image.architecture,
            selector: &vm.spec.node_selector,
            group: vm.spec.anti_affinity.as_ref().map(|g| format!("{}/{}/{g}", owner.org, owner.project)),
        }
    }
}

impl Policy {
    pub fn vcpus_of(&self, node: &NodeView) -> u64 {
        (f64::from(node.record.vcpus) * self.cpu_overcommit).floor() as u64
    }

    pub fn memory_of(&self, node: &NodeView) -> u64 {
        (node.record.memory_mib as f64 * self.memory_overcommit).floor() as u64
    }
}

/// Why `node` cannot take `request`, or the memory it would have left.
fn fit(node: &NodeView, used: Option<&Allocation>, request: &Request, policy: &Policy) -> Result<u64, String> {
    if !node.schedulable() {
        return Err(match node.member.as_deref() {
            Some(state) if state != "alive" => format!("{state} in the membership table"),
            _ => "its agent is not running".into(),
        });
    }
    if node.record.architecture != request.architecture {
        return Err(format!("{} wanted, the node is {}", request.architecture, node.record.architecture));
    }
    for (key, value) in request.selector {
        if node.record.labels.get(key) != Some(value) {
            return Err(format!("lacks label {key}={value}"));
        }
    }
    let (used_vcpus, used_memory) = used.map(|a| a.totals()).unwrap_or_default();
    let vcpus = policy.vcpus_of(node).saturating_sub(used_vcpus);
    if vcpus < u64::from(request.vcpus) {
        return Err(format!("{vcpus} vCPUs free, needs {}", request.vcpus));
    }
    let memory = policy.memory_of(node).saturating_sub(used_memory);
    if memory < request.memory_mib {
        return Err(format!("{memory} MiB free, needs {}", request.memory_mib));
    }
    if let (Some(group), Some(used)) = (&request.group, used) {
        if used.vms.values().any(|vm| vm.group.as_ref() == Some(group)) {
            let name = group.rsplit('/').next().unwrap_or(group);
            return Err(format!("already runs a VM of anti-affinity group {name}"));
        }
    }
    Ok(memory - request.memory_mib)
}

/// The node for `request`, or why none fits (every node named with its reason).
pub fn choose(
    nodes: &BTreeMap<String, NodeView>,
    allocations: &BTreeMap<String, Allocation>,
    request: &Request,
    policy: &Policy,
) -> Result<String, String> {
    let mut best: Option<(u64, &str)> = None;
    let mut refusals = Vec::new();
    for (name, node) in nodes {
        match fit(node, allocations.get(name), request, policy) {
            Ok(left) => {
                let better = match (best, policy.strategy) {
                    (None, _) => true,
                    (Some((b, _)), Strategy::Spread) => left > b,
                    (Some((b, _)), Strategy::Pack) => left < b,
                };
                if better {
                    best = Some((left, name));
                }
            }
            Err(why) => refusals.push(format!("{name}: {why}")),
        }
    }
    match best {
        Some((_, name)) => Ok(name.to_string()),
        None if nodes.is_empty() => Err("no hypervisor node is registered".into()),
        None => Err(format!(
            "no node can hold {} vCPUs and {} MiB: {}",
            request.vcpus,
            request.memory_mib,
            refusals.join("; ")
        )),
    }
}

#[cfg(test)]
mod tests;
