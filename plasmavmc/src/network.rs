//! VMs' NICs as PrismNET ports, made and changed as PlasmaVMC's service account (IAM grants
//! it `prismnet:ports:*` in tenants' projects, nothing more): each NIC of a VM is a port of
//! the VM's own, `<vm>-<index>` in the NIC's subnet. The scheduler records the ports a VM will
//! own in its node's allocation when it places it; the node agent makes (or takes up again)
//! each port, bound to the tap it opened, just before QEMU starts, and unbinds it when QEMU
//! has stopped; the scheduler's sweep deletes the ports of VMs that are gone.

use std::net::Ipv4Addr;

use photon_resource::remote::{At, Remote};
use photon_resource::{Owner, Resource, ResourceError};
use prismnet::model::port::{derived_mac, format_mac, Binding, Device, PortSpec};
use prismnet::model::{Port, Subnet};
use serde::{Deserialize, Serialize};

use crate::model::status::NicStatus;
use crate::model::vm::{port_name, slots, Nic, VmSpec};

/// A port a VM owns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRef {
    pub org: String,
    pub project: String,
    pub vpc: String,
    pub subnet: String,
    pub name: String,
}

impl PortRef {
    fn owner(&self) -> Owner {
        Owner::new(self.org.clone(), self.project.clone())
    }

    fn parents(&self) -> [String; 2] {
        [self.vpc.clone(), self.subnet.clone()]
    }

    /// `<vpc>/<subnet>/<port>`, as the VM's status shows it.
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.vpc, self.subnet, self.name)
    }
}

impl PortRef {
    /// VM `vm`'s port `<vpc>/<subnet>/<port>` (as its status names it).
    pub fn at(vm: &Resource<VmSpec>, path: &str) -> Option<Self> {
        let mut parts = path.splitn(3, '/');
        let (vpc, subnet, name) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Self {
            org: vm.metadata.org.clone(),
            project: vm.metadata.project.clone(),
            vpc: vpc.to_string(),
            subnet: subnet.to_string(),
            name: name.to_string(),
        })
    }
}

/// The ports VM `vm` owns, one per NIC, in order.
pub fn planned(vm: &Resource<VmSpec>) -> Vec<PortRef> {
    vm.spec
        .nics
        .iter()
        .zip(slots(&vm.spec.nics))
        .map(|(nic, slot)| PortRef {
            org: vm.metadata.org.clone(),
            project: vm.metadata.project.clone(),
            vpc: nic.vpc.clone(),
            subnet: nic.subnet.clone(),
            name: port_name(&vm.metadata.name, slot),
        })
        .collect()
}

/// The tap device of NIC `slot` of the VM with `uid`: unique per VM (a re-created VM of the
/// same name gets other taps), and short enough for the kernel (15 bytes).
pub fn tap_name(uid: &str, slot: u8) -> String {
    let id: String = uid.chars().filter(|c| c.is_ascii_alphanumeric()).take(10).collect();
    format!("vm{id}n{slot}")
}

/// PrismNET's API as PlasmaVMC's account.
#[derive(Clone)]
pub struct Network {
    remote: Remote,
}

impl Network {
    pub fn new(remote: Remote) -> Self {
        Self { remote }
    }

    /// Refuses, naming the field, a NIC whose VPC or subnet does not exist in `owner`.
    pub async fn check(&self, owner: &Owner, index: usize, nic: &Nic) -> Result<(), ResourceError> {
        let parents = [nic.vpc.clone()];
        let at = At { owner, parents: &parents, name: &nic.subnet };
        match self.remote.get::<Subnet>(at).await? {
            Some(_) => Ok(()),
            None => Err(ResourceError::Invalid {
                field: format!("spec.nics[{index}].subnet"),
                message: format!("subnet {}/{} does not exist in {}", nic.vpc, nic.subnet, owner.path()),
            }),
        }
    }

    /// Makes the port (or takes up the one made before, at an earlier start) bound to `tap` on
    /// `node`; what it was given.
    pub async fn plug(&self, port: &PortRef, nic: &Nic, slot: u8, node: &str, tap: &str) -> Result<NicStatus, ResourceError> {
        let (owner, parents) = (port.owner(), port.parents());
        let at = At { owner: &owner, parents: &parents, name: &port.name };
        let binding = Binding {
            node: node.to_string(),
            device: Device::Tap,
            netns: None,
            ifname: Some(tap.to_string()),
            configure: false,
        };
        let made = match self.remote.get::<Port>(at).await? {
            // Written even when the binding is the same: the tap is new (the last one went
            // with its QEMU), and the write is what tells PrismNET's dataplane to plug it in.
            Some(found) => {
                let mut spec = found.spec.clone();
                spec.binding = Some(binding);
                self.remote.update::<Port>(at, &spec, Some(found.metadata.resource_version)).await?
            }
            None => {
                let spec = PortSpec {
                    ip: nic.ip,
                    mac: None,
                    security_groups: nic.security_groups.clone(),
                    port_security: true,
                    binding: Some(binding),
                };
                self.remote.create::<Port>(at, &spec).await.map_err(|e| named(port, e))?
            }
        };
        let ip: Ipv4Addr = made.spec.ip.ok_or_else(|| ResourceError::Backend(format!("port {} has no address", port.path())))?;
        let mac = made.spec.mac.clone().unwrap_or_else(|| format_mac(derived_mac(ip)));
        Ok(NicStatus { slot, port: port.path(), ip, mac, tap: tap.to_string() })
    }

    /// Unbinds the port if it is still bound to `tap` on `node` (its tap went with QEMU).
    pub async fn unplug(&self, port: &PortRef, node: &str, tap: &str) -> Result<(), ResourceError> {
        let (owner, parents) = (port.owner(), port.parents());
        let at = At { owner: &owner, parents: &parents, name: &port.name };
        let Some(found) = self.remote.get::<Port>(at).await? else { return Ok(()) };
        let ours = found.spec.binding.as_ref().is_some_and(|b| b.node == node && b.ifname.as_deref() == Some(tap));
        if ours {
            let mut spec = found.spec.clone();
            spec.binding = None;
            self.remote.update::<Port>(at, &spec, Some(found.metadata.resource_version)).await?;
        }
        Ok(())
    }

    /// Deletes the port (gone already is fine).
    pub async fn delete(&self, port: &PortRef) -> Result<(), ResourceError> {
        let (owner, parents) = (port.owner(), port.parents());
        self.remote.delete::<Port>(At { owner: &owner, parents: &parents, name: &port.name }).await.map(|_| ())
    }
}

/// PrismNET's refusal of a port, said of the NIC.
fn named(port: &PortRef, e: ResourceError) -> ResourceError {
    match e {
        ResourceError::Invalid { message, .. } | ResourceError::Exhausted(message) => {
            ResourceError::Precondition(format!("port {}: {message}", port.path()))
        }
        other => other,
    }
}
