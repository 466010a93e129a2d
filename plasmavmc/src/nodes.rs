//! Hypervisor nodes as PlasmaVMC sees them. Each agent writes what its node can hold under
//! `/photoncloud/plasmavmc/nodes/<node>` (kept across restarts) and holds
//! `/photoncloud/plasmavmc/agents/<node>` under a lease while it runs (its presence). Whether a
//! node is dead comes from the cluster's membership table (`/photoncloud/nodes/<node>`, SWIM
//! gossip) when the node is a member, else from its agent's presence being gone for a grace:
//! an agent restarting is not a node dying, and its VMs keep running meanwhile.

use std::collections::BTreeMap;
use std::time::Duration;

use photon_resource::{Mirror, Store, Tx};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::model::ROOT;

pub fn records_prefix() -> String {
    format!("{ROOT}/nodes/")
}

pub fn presence_prefix() -> String {
    format!("{ROOT}/agents/")
}

/// The cluster's membership table (chainfire's gossip, docs/ARCHITECTURE.md).
pub const MEMBERS: &str = "/photoncloud/nodes/";

/// How long a presence lease lives after its agent stops renewing it.
pub const PRESENCE_TTL: Duration = Duration::from_secs(10);

/// What a node can hold, from the agent's `[agent]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeRecord {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub architecture: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `kvm`, or `tcg` with why KVM is not used.
    pub accel: String,
    /// The node's API URL, where other nodes relay consoles of its VMs.
    #[serde(default)]
    pub api: Option<String>,
}

/// A node as the scheduler weighs it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub name: String,
    pub record: NodeRecord,
    /// Its agent holds its presence now.
    pub present: bool,
    /// Its state in the membership table (`alive`, `suspect`, `dead`), if it is a member.
    pub member: Option<String>,
}

impl NodeView {
    /// New VMs go only where an agent runs and gossip (if any) does not doubt the node.
    pub fn schedulable(&self) -> bool {
        self.present && self.member.as_deref().is_none_or(|m| m == "alive")
    }

    /// Dead for certain: gossip says so, or (not a member) its agent is gone.
    pub fn dead(&self) -> bool {
        match self.member.as_deref() {
            Some(state) => state == "dead",
            None => !self.present,
        }
    }
}

#[derive(Deserialize)]
struct Member {
    #[serde(default)]
    state: String,
}

/// Every node of the followed records, presences (both under `ROOT`) and membership table.
pub fn view(plasmavmc: &Mirror, members: &Mirror) -> BTreeMap<String, NodeView> {
    let (records, presence) = (records_prefix(), presence_prefix());
    let mut nodes = BTreeMap::new();
    for (key, value) in plasmavmc.items() {
        let Some(name) = key.strip_prefix(&records) else { continue };
        let Ok(record) = serde_json::from_slice::<NodeRecord>(value) else { continue };
        let present = plasmavmc.items().contains_key(&format!("{presence}{name}"));
        let member = members
            .items()
            .get(&format!("{MEMBERS}{name}"))
            .and_then(|v| serde_json::from_slice::<Member>(v).ok())
            .map(|m| m.state);
        nodes.insert(name.to_string(), NodeView { name: name.to_string(), record, present, member });
    }
    nodes
}

/// Writes this node's record (retrying until chainfire takes it), then holds its presence until
/// `shutdown` (released at once on a clean stop).
pub async fn register(store: Store, node: String, record: NodeRecord, shutdown: CancellationToken) {
    let key = format!("{}{node}", records_prefix());
    loop {
        let written = match Tx::new().put(&key, &record) {
            Ok(tx) => store.commit(tx).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(_) => {
                tracing::info!(%node, vcpus = record.vcpus, memory_mib = record.memory_mib, accel = %record.accel, "registered this node's capacity");
                break;
            }
            Err(e) => tracing::warn!(%node, error = %e, "cannot register this node yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    let presence = format!("{}{node}", presence_prefix());
    photon_resource::claim::hold(store, presence, node, PRESENCE_TTL, shutdown, |held| {
        if !held {
            tracing::warn!("this agent's presence lapsed (chainfire unreachable?); taking it again");
        }
    })
    .await;
}
