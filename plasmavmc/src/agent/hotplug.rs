//! Hot attach and detach on a running guest: its data volumes (NBD block nodes and
//! virtio-blk devices) and its NICs (taps handed over QMP, virtio-net devices at fixed PCI
//! slots) made to match the spec, one step per call; a detach waits for the guest to let go
//! (ACPI) before what backs the device goes.

use std::os::fd::AsFd;
use std::time::Duration;

use photon_reconcile::Requeue;
use photon_resource::{Resource, ResourceError};

use super::qmp::Qmp;
use super::{qemu, taps, tolerate, Agent};
use crate::error::{PlasmavmcError, Result};
use crate::model::status::{NicStatus, VmStatus, VolumeStatus};
use crate::model::vm::{slots, VmSpec};
use crate::network::{self, PortRef};
use crate::scheduler::allocations::{self, Owned};
use crate::storage::AttachRef;

impl Agent {
    /// Hot attach and detach: the running guest's data volumes made to match the spec, one
    /// step per call; `Some` while a detach waits for the guest to let go of its disk.
    pub(super) async fn volumes(&self, key: &str, vm: &Resource<VmSpec>, status: &VmStatus, qmp: &mut Qmp) -> Result<Option<Requeue>> {
        let uid = &vm.metadata.uid;
        for volume in vm.spec.volumes.iter().filter(|v| !status.volumes.iter().any(|s| &s.volume == *v)) {
            let export = self.attach(vm, volume).await?;
            let (node, _) = qemu::volume_ids(volume);
            // A slot none of the attached volumes has (one being detached keeps its own).
            let slot = VolumeStatus::slot_for(volume, &status.volumes, &[]);
            tolerate(qmp.execute("blockdev-add", Some(qemu::nbd_blockdev(&node, &export))).await, "Duplicate")?;
            tolerate(qmp.execute("device_add", Some(qemu::volume_device(volume, slot))).await, "Duplicate")?;
            tracing::info!(vm = %key, %volume, slot, "attached a volume to the running guest");
            let added = VolumeStatus { volume: volume.clone(), attachment: AttachRef::of(vm, volume).name, slot: Some(slot) };
            self.report(key, uid, move |s| {
                if !s.volumes.contains(&added) {
                    s.volumes.push(added.clone());
                }
            })
            .await?;
        }
        for gone in status.volumes.iter().filter(|s| !vm.spec.volumes.contains(&s.volume)) {
            let (node, device) = qemu::volume_ids(&gone.volume);
            if qmp.has_device(&device).await? {
                // The guest is asked (ACPI) and lets go when it can: looked at again shortly.
                tolerate(qmp.execute("device_del", Some(serde_json::json!({"id": device}))).await, "in progress")?;
                return Ok(Some(Requeue::After(Duration::from_millis(200))));
            }
            tolerate(qmp.execute("blockdev-del", Some(serde_json::json!({"node-name": node}))).await, "not found")?;
            if let Some(storage) = &self.storage {
                storage
                    .detach(&AttachRef::of(vm, &gone.volume))
                    .await
                    .map_err(|e| PlasmavmcError::Storage(format!("volume {}: {e}", gone.volume)))?;
            }
            tracing::info!(vm = %key, volume = %gone.volume, "detached a volume from the running guest");
            let name = gone.volume.clone();
            self.report(key, uid, move |s| s.volumes.retain(|v| v.volume != name)).await?;
        }
        Ok(None)
    }

    /// Hot attach and detach of NICs: the running guest's NICs made to match the spec, one
    /// step per call (detaches first: a slot may be handed to a new NIC once its old one is
    /// gone); `Some` while a detach waits for the guest to let go of its NIC.
    pub(super) async fn nics(&self, key: &str, vm: &Resource<VmSpec>, status: &VmStatus, qmp: &mut Qmp) -> Result<Option<Requeue>> {
        let uid = &vm.metadata.uid;
        let planned: Vec<(PortRef, u8)> = network::planned(vm).into_iter().zip(slots(&vm.spec.nics)).collect();
        let wanted = |n: &NicStatus| planned.iter().any(|(p, s)| *s == n.slot && p.path() == n.port);
        for gone in status.nics.iter().filter(|n| !wanted(n)) {
            let (netdev, device) = qemu::nic_ids(gone.slot);
            if qmp.has_device(&device).await? {
                tolerate(qmp.execute("device_del", Some(serde_json::json!({"id": device}))).await, "in progress")?;
                return Ok(Some(Requeue::After(Duration::from_millis(200))));
            }
            // The netdev holds the tap's descriptor: deleting it ends the tap.
            tolerate(qmp.execute("netdev_del", Some(serde_json::json!({"id": netdev}))).await, "not found")?;
            if let (Some(net), Some(port)) = (&self.network, PortRef::at(vm, &gone.port)) {
                net.delete(&port).await.map_err(|e| PlasmavmcError::Network(format!("deleting port {}: {e}", gone.port)))?;
            }
            tracing::info!(vm = %key, port = %gone.port, slot = gone.slot, "detached a NIC from the running guest");
            let gone = gone.clone();
            self.report(key, uid, move |s| s.nics.retain(|n| *n != gone)).await?;
        }
        for ((port, slot), nic) in planned.iter().zip(&vm.spec.nics) {
            if status.nics.iter().any(|n| n.slot == *slot && n.port == port.path()) {
                continue;
            }
            let Some(net) = &self.network else {
                return Err(PlasmavmcError::Network(
                    "a NIC was attached but this node has no PlasmaVMC service account (iam.credentials_file) to make its port in PrismNET".into(),
                ));
            };
            allocations::own(&self.store, &self.settings.node, uid, Owned::Port(port)).await?;
            let tap = network::tap_name(uid, *slot);
            let (netdev, device) = qemu::nic_ids(*slot);
            let failed = |e: ResourceError| PlasmavmcError::Network(format!("NIC {slot} (port {}): {e}", port.path()));
            let given = if qmp.has_device(&device).await? {
                // Attached by an agent that stopped before it said so.
                net.plug(port, nic, *slot, &self.settings.node, &tap).await.map_err(failed)?
            } else {
                // A netdev left by an attach cut short goes first, and its tap with it.
                tolerate(qmp.execute("netdev_del", Some(serde_json::json!({"id": netdev}))).await, "not found")?;
                let fd = taps::open(&tap).map_err(|e| PlasmavmcError::io(format!("NIC {slot}'s tap"), e))?;
                let given = net.plug(port, nic, *slot, &self.settings.node, &tap).await.map_err(failed)?;
                qmp.execute_with_fd("getfd", Some(serde_json::json!({"fdname": netdev})), fd.as_fd()).await?;
                qmp.execute("netdev_add", Some(serde_json::json!({"type": "tap", "id": netdev, "fd": netdev}))).await?;
                qmp.execute("device_add", Some(qemu::nic_device(*slot, &given.mac))).await?;
                given
            };
            tracing::info!(vm = %key, port = %given.port, ip = %given.ip, %tap, "attached a NIC to the running guest");
            self.report(key, uid, move |s| {
                if !s.nics.contains(&given) {
                    s.nics.push(given.clone());
                }
            })
            .await?;
        }
        Ok(None)
    }

}
