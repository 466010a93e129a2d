//! VMs' disks on LightningStor volumes, attached as PlasmaVMC's service account (IAM grants
//! it LightningStor's attachments and reading volumes in tenants' projects): each volume a VM
//! uses gets an attachment of the VM's own, `vm-<uid>`, whose token is the NBD export QEMU
//! opens over TLS. One writer at a time is LightningStor's writer lease: a VM restarted on
//! another node cannot write while the old node's session still holds the volume. The
//! attachments a VM made are listed in its node's allocation record, so the scheduler's sweep
//! deletes them with the VM.

use photon_resource::remote::{At, Remote};
use photon_resource::{Owner, Resource, ResourceError};
use lightningstor::volumes::model::{Attachment, AttachmentSpec, Volume};
use serde::{Deserialize, Serialize};

use crate::model::vm::VmSpec;

/// An attachment a VM owns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct AttachRef {
    pub org: String,
    pub project: String,
    pub volume: String,
    pub name: String,
}

impl AttachRef {
    /// VM `vm`'s attachment of its project's `volume`.
    pub fn of(vm: &Resource<VmSpec>, volume: &str) -> Self {
        let id: String = vm.metadata.uid.chars().filter(|c| c.is_ascii_alphanumeric()).take(16).collect();
        Self {
            org: vm.metadata.org.clone(),
            project: vm.metadata.project.clone(),
            volume: volume.to_string(),
            name: format!("vm-{id}"),
        }
    }

    fn owner(&self) -> Owner {
        Owner::new(self.org.clone(), self.project.clone())
    }
}

/// Every volume VM `vm` uses: its root volume first, then its data volumes.
pub fn planned(vm: &Resource<VmSpec>) -> Vec<AttachRef> {
    vm.spec.root_volume.iter().chain(&vm.spec.volumes).map(|v| AttachRef::of(vm, v)).collect()
}

/// Where QEMU reaches a volume: LightningStor's NBD server and the export's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub host: String,
    pub port: u16,
    pub name: String,
}

/// LightningStor's API as PlasmaVMC's account, and its NBD server.
#[derive(Clone)]
pub struct Storage {
    remote: Remote,
    nbd_host: String,
    nbd_port: u16,
}

impl Storage {
    pub fn new(remote: Remote, nbd: &str) -> Result<Self, String> {
        let (host, port) = nbd.rsplit_once(':').ok_or_else(|| format!("lightningstor.nbd {nbd:?}: host:port"))?;
        let port = port.parse().map_err(|_| format!("lightningstor.nbd {nbd:?}: the port is not a number"))?;
        Ok(Self { remote, nbd_host: host.trim_matches(['[', ']']).to_string(), nbd_port: port })
    }

    /// Refuses, naming `field`, a volume that does not exist in `owner`.
    pub async fn check(&self, owner: &Owner, field: &str, volume: &str) -> Result<(), ResourceError> {
        let at = At { owner, parents: &[], name: volume };
        match self.remote.get::<Volume>(at).await? {
            Some(_) => Ok(()),
            None => Err(ResourceError::Invalid {
                field: field.to_string(),
                message: format!("volume {volume} does not exist in {}", owner.path()),
            }),
        }
    }

    /// The VM's attachment of the volume (made if missing, moved to `node` if another node
    /// held it) and where QEMU opens it.
    pub async fn attach(&self, attachment: &AttachRef, node: &str) -> Result<Export, ResourceError> {
        let owner = attachment.owner();
        let parents = [attachment.volume.clone()];
        let at = At { owner: &owner, parents: &parents, name: &attachment.name };
        let made = match self.remote.get::<Attachment>(at).await? {
            Some(found) if found.spec.host == node => found,
            Some(found) => {
                let mut spec = found.spec.clone();
                spec.host = node.to_string();
                self.remote.update::<Attachment>(at, &spec, Some(found.metadata.resource_version)).await?
            }
            None => {
                let spec =
                    AttachmentSpec { host: node.to_string(), read_only: false, snapshot: None, initiator: None, token: None };
                self.remote.create::<Attachment>(at, &spec).await?
            }
        };
        let token = made.spec.token.ok_or_else(|| {
            ResourceError::Backend(format!("attachment {} of volume {} has no token", attachment.name, attachment.volume))
        })?;
        Ok(Export { host: self.nbd_host.clone(), port: self.nbd_port, name: token })
    }

    /// Deletes the attachment (gone already is fine).
    pub async fn detach(&self, attachment: &AttachRef) -> Result<(), ResourceError> {
        let owner = attachment.owner();
        let parents = [attachment.volume.clone()];
        self.remote.delete::<Attachment>(At { owner: &owner, parents: &parents, name: &attachment.name }).await.map(|_| ())
    }
}
