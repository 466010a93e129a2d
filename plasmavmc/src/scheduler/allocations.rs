//! What each node has granted: `/photoncloud/plasmavmc/allocations/<node>` lists the VMs placed
//! there with their vCPUs and memory. A placement rewrites the record on the key's revision in
//! the same transaction as the VM's status, so two placements on one node at once cannot both
//! succeed: the second sees the new total and chooses again (no node is ever overcommitted).
//! The record also lists the ports each VM owns, so they are deleted even when the VM's node
//! is gone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::status::Grant;
use crate::model::ROOT;
use crate::network::PortRef;
use crate::storage::AttachRef;
use photon_resource::{ResourceError, Store, Tx};

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
    /// The PrismNET ports the VM owns (its NICs'): deleted when the VM is, by the sweep.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRef>,
    /// The LightningStor attachments the VM made (its volumes'): deleted with it too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachRef>,
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

/// The key of `node`'s record.
pub fn key(node: &str) -> String {
    format!("{}{node}", prefix())
}

/// `tx` with `record` written as `node`'s, on condition the stored record is still at
/// `version` (`None`: there is none yet, and none may appear meanwhile).
pub fn put(tx: Tx, node: &str, record: &Allocation, version: Option<i64>) -> Result<Tx, ResourceError> {
    match version {
        Some(version) => tx.update(&key(node), record, version),
        None => tx.create(&key(node), record),
    }
}

/// Something a VM owns elsewhere, recorded with its share.
pub enum Owned<'a> {
    Port(&'a PortRef),
    Attachment(&'a AttachRef),
}

/// Records in `node`'s allocation that VM `uid` owns `what` (before it is made, so the sweep
/// finds it whatever happens next). A VM with no share there (moved meanwhile) is left.
pub async fn own(store: &Store, node: &str, uid: &str, what: Owned<'_>) -> Result<(), ResourceError> {
    let key = key(node);
    for _ in 0..16 {
        let Some(found) = store.get::<Allocation>(&key).await? else { return Ok(()) };
        let mut record = found.value;
        let Some(held) = record.vms.get_mut(uid) else { return Ok(()) };
        let added = match what {
            Owned::Port(port) => push_new(&mut held.ports, port),
            Owned::Attachment(attachment) => push_new(&mut held.attachments, attachment),
        };
        if !added {
            return Ok(());
        }
        if store.commit(Tx::new().update(&key, &record, found.version)?).await?.is_some() {
            return Ok(());
        }
    }
    Err(ResourceError::Backend(format!("the allocation record of {node} kept changing under 16 writes")))
}

/// Adds `item` unless `list` has it; whether it did.
fn push_new<T: Clone + PartialEq>(list: &mut Vec<T>, item: &T) -> bool {
    let new = !list.contains(item);
    if new {
        list.push(item.clone());
    }
    new
}
