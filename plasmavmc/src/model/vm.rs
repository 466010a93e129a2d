//! A VM: a flavour and an image, the power state its owner asks for, what cloud-init gives the
//! guest (ssh keys, user data, metadata), and where it may run (node labels, an anti-affinity
//! group, what happens when its node dies), and its NICs: each a PrismNET port the VM owns in
//! one of its project's subnets. What it is doing is its status (`super::status`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use photon_resource::{check_name, FieldError, Kind};
use serde::{Deserialize, Serialize};

use super::{check_description, fixed};

pub struct Vm;

/// User data cloud-init reads: at most this many bytes.
pub const MAX_USER_DATA: usize = 64 * 1024;

/// NICs per VM.
pub const MAX_NICS: usize = 8;

/// Data volumes per VM.
pub const MAX_VOLUMES: usize = 16;

/// One network interface: a port of the VM's own, made in `vpc`/`subnet` of the VM's project
/// when it is placed (or attached) and deleted with it (or when detached), named
/// `<vm>-<slot>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    pub vpc: String,
    pub subnet: String,
    /// Security groups of the VPC (none: nothing comes in but replies).
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// A fixed address in the subnet (default: PrismNET picks a free one).
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// What names the NIC for its life (its port, its tap, its place on the guest's PCI bus),
    /// so the others keep theirs when one is detached. Assigned by the server when left out:
    /// an unchanged NIC keeps its slot, a new one takes one no NIC had.
    #[serde(default)]
    pub slot: Option<u8>,
}

impl Nic {
    /// Whether `self` is `other` but for the slot.
    fn same_network(&self, other: &Nic) -> bool {
        (&self.vpc, &self.subnet, &self.security_groups, self.ip) == (&other.vpc, &other.subnet, &other.security_groups, other.ip)
    }
}

/// Each NIC's slot (one stored before slots were assigned: its place in the list).
pub fn slots(nics: &[Nic]) -> Vec<u8> {
    nics.iter().enumerate().map(|(i, nic)| nic.slot.unwrap_or(i as u8)).collect()
}

/// Gives each NIC of `new` left without a slot one: the slot of the NIC of `current` at the
/// same place if that is the same network and its slot is not taken in `new`, else the lowest
/// no NIC of either list has (so a NIC being detached is never confused with one attached
/// in its place).
fn assign_slots(new: &mut [Nic], current: &[Nic]) -> Result<(), FieldError> {
    let old = slots(current);
    let mut taken: Vec<u8> = new.iter().filter_map(|nic| nic.slot).collect();
    for i in 0..new.len() {
        if new[i].slot.is_some() {
            continue;
        }
        let kept = current.get(i).filter(|c| c.same_network(&new[i])).map(|_| old[i]).filter(|s| !taken.contains(s));
        let slot = kept
            .or_else(|| (0..MAX_NICS as u8).find(|s| !taken.contains(s) && !old.contains(s)))
            .ok_or_else(|| {
                FieldError::new(
                    format!("spec.nics[{i}]"),
                    format!("no free slot: at most {MAX_NICS}, counting those being detached"),
                )
            })?;
        new[i].slot = Some(slot);
        taken.push(slot);
    }
    Ok(())
}

/// The name of the port behind NIC `slot` of VM `vm`: `<vm>-<slot>`, the VM's name shortened
/// so the whole is a valid name.
pub fn port_name(vm: &str, slot: u8) -> String {
    let suffix = format!("-{slot}");
    let room = 63 - suffix.len();
    let stem = if vm.len() > room { vm[..room].trim_end_matches('-') } else { vm };
    format!("{stem}{suffix}")
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    #[default]
    Running,
    Stopped,
}

/// What happens to a VM whose node died.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    /// Marked `error` with the reason; its owner decides.
    #[default]
    Never,
    /// Placed again on a live node and started there.
    Elsewhere,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    /// A flavour of the project; changed only while the VM is stopped (a resize).
    pub flavor: String,
    /// An image of the project, or `public/<name>` for one of the platform's public images;
    /// fixed for the VM's life.
    pub image: String,
    #[serde(default)]
    pub power: Power,
    /// Public keys for the guest's default user (`ssh-ed25519 AAAA... comment`).
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    /// cloud-init user data (`#cloud-config ...` or a script), at most 64 KiB.
    #[serde(default)]
    pub user_data: Option<String>,
    /// Free key/value pairs the guest reads from its metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Labels a node must carry to run the VM.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// VMs of a project naming the same group never share a node.
    #[serde(default)]
    pub anti_affinity: Option<String>,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// The root disk on a LightningStor volume of the project (the guest's vda) instead of a
    /// local overlay of the image's disk: it outlives the node, so the VM can run elsewhere.
    /// Fixed for the VM's life.
    #[serde(default)]
    pub root_volume: Option<String>,
    /// Data volumes of the project, after the root disk in order; attached to and detached
    /// from a running VM as this list changes.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Network interfaces, in the order a guest booting sees them (eth0 first); attached to
    /// and detached from a running VM as this list changes (a NIC's network is fixed: another
    /// network is another NIC).
    #[serde(default)]
    pub nics: Vec<Nic>,
    /// Bumped by the migrate action; the scheduler moves the running VM to another node once
    /// per bump (live: the guest keeps running).
    #[serde(default)]
    pub migrations: u32,
    /// The node the next migration goes to (default: the scheduler's choice).
    #[serde(default)]
    pub migrate_to: Option<String>,
    /// Bumped by the reboot action; the agent resets the VM once per bump.
    #[serde(default)]
    pub reboots: u32,
    #[serde(default)]
    pub description: String,
}

fn check_pairs(field: &str, pairs: &BTreeMap<String, String>) -> Result<(), FieldError> {
    if pairs.len() > 64 {
        return Err(FieldError::new(field, "at most 64 entries"));
    }
    for (key, value) in pairs {
        if key.is_empty() || key.len() > 63 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)) {
            return Err(FieldError::new(
                format!("{field}.{key}"),
                "keys are 1 to 63 letters, digits, '-', '_', '.' or '/'",
            ));
        }
        if value.len() > 255 {
            return Err(FieldError::new(format!("{field}.{key}"), "values are at most 255 bytes"));
        }
    }
    Ok(())
}

impl Kind for Vm {
    type Spec = VmSpec;
    const NAME: &'static str = "VM";
    const PATH: &'static [&'static str] = &["vms"];

    fn validate(spec: &VmSpec) -> Result<(), FieldError> {
        check_name("spec.flavor", &spec.flavor)?;
        super::image::check_reference("spec.image", &spec.image)?;
        if spec.ssh_keys.len() > 32 {
            return Err(FieldError::new("spec.ssh_keys", "at most 32 keys"));
        }
        for (i, key) in spec.ssh_keys.iter().enumerate() {
            let mut words = key.split_whitespace();
            let (kind, body) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
            let known = kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
            if !known || body.len() < 16 || key.len() > 16 * 1024 || key.contains('\n') {
                return Err(FieldError::new(
                    format!("spec.ssh_keys[{i}]"),
                    "not an OpenSSH public key (`ssh-ed25519 AAAA... comment`)",
                ));
            }
        }
        if let Some(data) = &spec.user_data {
            if data.len() > MAX_USER_DATA {
                return Err(FieldError::new(
                    "spec.user_data",
                    format!("{} bytes; at most {MAX_USER_DATA}", data.len()),
                ));
            }
        }
        check_pairs("spec.metadata", &spec.metadata)?;
        check_pairs("spec.labels", &spec.labels)?;
        check_pairs("spec.node_selector", &spec.node_selector)?;
        if let Some(group) = &spec.anti_affinity {
            check_name("spec.anti_affinity", group)?;
        }
        if let Some(root) = &spec.root_volume {
            check_name("spec.root_volume", root)?;
        }
        if spec.volumes.len() > MAX_VOLUMES {
            return Err(FieldError::new("spec.volumes", format!("{} volumes; at most {MAX_VOLUMES}", spec.volumes.len())));
        }
        for (i, volume) in spec.volumes.iter().enumerate() {
            check_name(&format!("spec.volumes[{i}]"), volume)?;
            if spec.volumes[..i].contains(volume) || spec.root_volume.as_ref() == Some(volume) {
                return Err(FieldError::new(format!("spec.volumes[{i}]"), format!("volume {volume} is attached twice")));
            }
        }
        if spec.nics.len() > MAX_NICS {
            return Err(FieldError::new("spec.nics", format!("{} NICs; at most {MAX_NICS}", spec.nics.len())));
        }
        for (i, nic) in spec.nics.iter().enumerate() {
            if let Some(slot) = nic.slot {
                if slot >= MAX_NICS as u8 {
                    return Err(FieldError::new(format!("spec.nics[{i}].slot"), format!("0 to {}", MAX_NICS - 1)));
                }
                if spec.nics[..i].iter().any(|other| other.slot == Some(slot)) {
                    return Err(FieldError::new(format!("spec.nics[{i}].slot"), format!("slot {slot} is used twice")));
                }
            }
            check_name(&format!("spec.nics[{i}].vpc"), &nic.vpc)?;
            check_name(&format!("spec.nics[{i}].subnet"), &nic.subnet)?;
            if nic.security_groups.len() > 16 {
                return Err(FieldError::new(format!("spec.nics[{i}].security_groups"), "at most 16 groups"));
            }
            for group in &nic.security_groups {
                check_name(&format!("spec.nics[{i}].security_groups"), group)?;
            }
        }
        check_description(&spec.description)
    }

    /// Slots assigned at create too, so a client that reads the VM and writes it back keeps
    /// each NIC's.
    fn seal(spec: &mut VmSpec, current: Option<&VmSpec>, _sealer: &dyn photon_resource::Sealer) -> Result<(), FieldError> {
        assign_slots(&mut spec.nics, current.map_or(&[], |c| &c.nics))
    }

    fn update(new: &mut VmSpec, current: &VmSpec) -> Result<(), FieldError> {
        fixed("spec.image", &new.image, &current.image)?;
        fixed("spec.root_volume", &new.root_volume, &current.root_volume)?;
        assign_slots(&mut new.nics, &current.nics)?;
        let (old, now) = (slots(&current.nics), slots(&new.nics));
        for (i, nic) in new.nics.iter().enumerate() {
            let same_slot = old.iter().position(|s| *s == now[i]).map(|at| &current.nics[at]);
            if same_slot.is_some_and(|was| !was.same_network(nic)) {
                return Err(FieldError::new(
                    format!("spec.nics[{i}]"),
                    format!("slot {} is a NIC of another network: a NIC's network is fixed (detach it, attach another)", now[i]),
                ));
            }
        }
        if new.flavor != current.flavor && (current.power != Power::Stopped || new.power != Power::Stopped) {
            return Err(FieldError::new("spec.flavor", "a VM is resized only while stopped: stop it first"));
        }
        if new.migrations < current.migrations {
            return Err(FieldError::new("spec.migrations", "only ever grows (the migrate action bumps it)"));
        }
        if new.reboots < current.reboots {
            return Err(FieldError::new("spec.reboots", "only ever grows (the reboot action bumps it)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(subnet: &str, slot: Option<u8>) -> Nic {
        Nic { vpc: "blue".into(), subnet: subnet.into(), security_groups: Vec::new(), ip: None, slot }
    }

    fn spec(nics: Vec<Nic>) -> VmSpec {
        serde_json::from_value(serde_json::json!({"flavor": "f", "image": "i", "nics": serde_json::to_value(nics).unwrap()})).unwrap()
    }

    fn updated(current: &VmSpec, nics: Vec<Nic>) -> Result<Vec<u8>, FieldError> {
        let mut new = spec(nics);
        Vm::update(&mut new, current)?;
        Ok(slots(&new.nics))
    }

    #[test]
    fn nics_keep_their_slots_and_new_ones_never_take_one_being_let_go() {
        let mut created = spec(vec![nic("a", None), nic("b", None), nic("c", None)]);
        Vm::seal(&mut created, None, &photon_resource::NoSecrets).unwrap();
        assert_eq!(slots(&created.nics), [0, 1, 2]);
        // Written back as read, or unchanged but without slots: the same slots.
        assert_eq!(updated(&created, created.nics.clone()).unwrap(), [0, 1, 2]);
        assert_eq!(updated(&created, vec![nic("a", None), nic("b", None), nic("c", None), nic("d", None)]).unwrap(), [0, 1, 2, 3]);
        // The middle one detached: `c` keeps slot 2 when it says so...
        assert_eq!(updated(&created, vec![nic("a", Some(0)), nic("c", Some(2))]).unwrap(), [0, 2]);
        // ...and a NIC added in the same write gets a slot none of the three had.
        assert_eq!(updated(&created, vec![nic("a", Some(0)), nic("c", Some(2)), nic("d", None)]).unwrap(), [0, 2, 3]);
        // A slot's network is fixed.
        let moved = updated(&created, vec![nic("z", Some(0))]).unwrap_err();
        assert_eq!(moved.field, "spec.nics[0]");
        // Eight in all, counting those being let go.
        let full: Vec<Nic> = (0..MAX_NICS as u8).map(|s| nic("a", Some(s))).collect();
        let full = spec(full);
        let mut next = full.nics[1..].to_vec();
        next.push(nic("new", None));
        assert_eq!(updated(&full, next).unwrap_err().field, format!("spec.nics[{}]", MAX_NICS - 1));
    }

    #[test]
    fn slots_out_of_range_or_used_twice_are_refused() {
        let twice = spec(vec![nic("a", Some(1)), nic("b", Some(1))]);
        assert_eq!(Vm::validate(&twice).unwrap_err().field, "spec.nics[1].slot");
        let far = spec(vec![nic("a", Some(MAX_NICS as u8))]);
        assert_eq!(Vm::validate(&far).unwrap_err().field, "spec.nics[0].slot");
    }
}
