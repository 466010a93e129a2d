//! A VM's status: the state machine (pending → scheduled → starting → running → stopping →
//! stopped, and error with a reason), where it runs and with what it was granted, and every
//! transition with its time. The scheduler writes the placement, the node agent the rest; each
//! write is a compare-and-swap on the VM's revision, so a concurrent change of the spec is
//! never overwritten (`write`).

use photon_resource::{Resource, ResourceError, Store, Tx};
use serde::{Deserialize, Serialize};

use super::vm::VmSpec;

/// Transitions kept per VM (the oldest are dropped).
const HISTORY: usize = 32;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Pending,
    Scheduled,
    Starting,
    Running,
    Stopping,
    Stopped,
    Error,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Scheduled => "scheduled",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Transition {
    pub state: State,
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the VM holds on its node: counted against the node's capacity until it is deleted or
/// placed elsewhere.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Grant {
    pub vcpus: u32,
    pub memory_mib: u64,
}

/// One NIC as plugged in: its port in PrismNET, the address and MAC the port was given, and
/// the tap device on the node (which PrismNET moves onto the VPC's bridge).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NicStatus {
    /// The NIC's slot (`spec.nics[].slot`).
    #[serde(default)]
    pub slot: u8,
    /// `<vpc>/<subnet>/<port>`.
    pub port: String,
    pub ip: std::net::Ipv4Addr,
    pub mac: String,
    pub tap: String,
}

/// A volume as attached to the running VM: its name and the block node QEMU reads it through.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VolumeStatus {
    pub volume: String,
    /// The LightningStor attachment that grants this node the volume.
    pub attachment: String,
    /// Its place among the guest's data disks (and so on its PCI bus), kept for the volume's
    /// time in the VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u8>,
}

impl VolumeStatus {
    /// The slot for `volume`: the one it had in `attached` (the VM's status), else the lowest
    /// free of `taken` and of every volume still listed.
    pub fn slot_for(volume: &str, attached: &[VolumeStatus], taken: &[u8]) -> u8 {
        let held = |s: u8| taken.contains(&s) || attached.iter().any(|v| v.slot == Some(s) && v.volume != volume);
        attached
            .iter()
            .find(|v| v.volume == volume)
            .and_then(|v| v.slot)
            .filter(|s| !taken.contains(s))
            .or_else(|| (0..super::vm::MAX_VOLUMES as u8).find(|s| !held(*s)))
            .unwrap_or_default()
    }
}

/// Where a live migration stands: the scheduler reserves the target (`prepare`), the target's
/// agent starts QEMU waiting for the stream (`listening`, at `uri`), the source's agent sends
/// it (`migrating`) until QEMU says `completed` or `failed`; the scheduler then switches the
/// VM to the target (or gives the reservation back).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prepare,
    Listening,
    Migrating,
    Completed,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Migration {
    pub target: String,
    pub phase: Phase,
    /// Where the target's QEMU listens (`tcp:<host>:<port>`, TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    pub started_ms: u64,
    /// The guest's pause while its last memory crossed, as QEMU measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    /// The whole migration, as QEMU measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A migration that ended: from where to where, and how it went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MigrationRecord {
    pub from: String,
    pub to: String,
    pub succeeded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct VmStatus {
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The node the scheduler placed the VM on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
    /// How the VM's CPU runs: `kvm`, or `tcg` (software emulation) with why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accel: Option<String>,
    /// Reboots of the spec done so far.
    #[serde(default)]
    pub reboots: u32,
    /// The NICs as last plugged in, in the spec's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<NicStatus>,
    /// The data volumes attached to the running guest now (the root volume is not listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeStatus>,
    /// The live migration under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Migration>,
    /// Migrations of the spec handled so far (done or failed).
    #[serde(default)]
    pub migrations: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_migration: Option<MigrationRecord>,
    /// Placements so far (a restart elsewhere adds one).
    #[serde(default)]
    pub placements: u32,
    #[serde(default)]
    pub transitions: Vec<Transition>,
}

impl VmStatus {
    /// The status of a stored VM (pending before anyone wrote one).
    pub fn of(resource: &Resource<VmSpec>) -> Self {
        <Self as Observed>::of(resource)
    }

    /// Moves to `state` (recorded as a transition only if it is a change of state or reason).
    pub fn enter(&mut self, state: State, reason: Option<String>) {
        if self.state == state && self.reason == reason && !self.transitions.is_empty() {
            return;
        }
        self.state = state;
        self.reason = reason.clone();
        self.transitions.push(Transition { state, at_ms: photon_resource::meta::now_ms(), reason });
        if self.transitions.len() > HISTORY {
            let excess = self.transitions.len() - HISTORY;
            self.transitions.drain(..excess);
        }
    }
}

/// A `write` guard that adds nothing.
pub fn unguarded(tx: Tx) -> Result<Tx, ResourceError> {
    Ok(tx)
}

/// A status a controller observes of a resource of spec `Spec` (a VM's, an image's).
pub trait Observed: Serialize + serde::de::DeserializeOwned + Default + Send {
    type Spec: Serialize + serde::de::DeserializeOwned + Send + Sync;
    /// The kind's name, for "not found".
    const KIND: &'static str;

    /// The status stored with `resource` (none yet: the default).
    fn of(resource: &Resource<Self::Spec>) -> Self {
        resource.status.as_ref().and_then(|s| serde_json::from_value(s.clone()).ok()).unwrap_or_default()
    }
}

impl Observed for VmStatus {
    type Spec = VmSpec;
    const KIND: &'static str = "VM";
}

/// What `write` makes of the stored resource: its new status, or `None` to leave it as it is.
pub type Change<'a, T = VmStatus> = dyn FnMut(&Resource<<T as Observed>::Spec>, &T) -> Option<T> + Send + 'a;

/// Rewrites the status of the resource at `key` with `change`, retrying while the resource
/// changes under it; `guard` adds conditions (and writes) to the same transaction, and a failed
/// guard (rather than a changed resource) is reported as `Ok(false)`. `Ok(true)` once written
/// or when `change` leaves it; `Err` when the resource is gone.
pub async fn write<T: Observed>(
    store: &Store,
    key: &str,
    change: &mut Change<'_, T>,
    guard: &(dyn Fn(Tx) -> Result<Tx, ResourceError> + Send + Sync),
) -> Result<bool, ResourceError> {
    for _ in 0..16 {
        let Some(found) = store.get::<Resource<T::Spec>>(key).await? else {
            return Err(ResourceError::NotFound { kind: T::KIND, name: key.rsplit('/').next().unwrap_or(key).to_string() });
        };
        let current = T::of(&found.value);
        let Some(next) = change(&found.value, &current) else { return Ok(true) };
        let mut resource = found.value;
        resource.status = Some(serde_json::to_value(&next).map_err(|e| ResourceError::Backend(e.to_string()))?);
        resource.metadata.resource_version = 0;
        let tx = guard(Tx::new().update(key, &resource, found.version)?)?;
        if store.commit(tx).await?.is_some() {
            return Ok(true);
        }
        // Either the resource changed (read it again) or the guard failed (say so).
        match store.get::<serde_json::Value>(key).await? {
            Some(again) if again.version != found.version => continue,
            Some(_) => return Ok(false),
            None => continue,
        }
    }
    Err(ResourceError::Backend(format!("the status of {key} kept changing under 16 writes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attached(volume: &str, slot: Option<u8>) -> VolumeStatus {
        VolumeStatus { volume: volume.into(), attachment: format!("vm-{volume}"), slot }
    }

    #[test]
    fn a_volume_keeps_its_slot_and_a_new_one_takes_one_no_listed_volume_has() {
        let listed = [attached("a", Some(0)), attached("gone", Some(1)), attached("c", Some(2))];
        assert_eq!(VolumeStatus::slot_for("c", &listed, &[]), 2, "kept");
        assert_eq!(VolumeStatus::slot_for("new", &listed, &[]), 3, "not the slot of one being detached");
        assert_eq!(VolumeStatus::slot_for("new", &listed[..1], &[1]), 2, "nor one taken in this start");
        assert_eq!(VolumeStatus::slot_for("old", &[attached("old", None)], &[]), 0, "a slot for one that had none");
    }
}
