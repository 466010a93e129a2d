//! A resize, the scheduler's part: a stopped VM given another flavour has its grant on its node
//! changed to the new size in the same transaction as its status, if the node still has room
//! for it (else the VM is marked `error`, saying so, and keeps its old share until its owner
//! chooses a flavour that fits or deletes it).

use std::time::Duration;

use photon_reconcile::Requeue;
use photon_resource::{Resource, ResourceError, Tx};

use super::allocations;
use super::place::{self, Request};
use super::Scheduler;
use crate::model::status::{self, Grant, State, VmStatus};
use crate::model::vm::VmSpec;
use crate::model::Flavor;

impl Scheduler {
    /// `Some` when the VM's grant on `node` is not its flavour's size any more (and it was
    /// dealt with); `None` when it is.
    pub(super) async fn regrant(&self, key: &str, vm: &Resource<VmSpec>, node: &str, status: &VmStatus) -> Result<Option<Requeue>, String> {
        let owner = vm.metadata.owner();
        let (Some(flavor), Some(image)) = (
            self.get::<Flavor>(&owner, &vm.spec.flavor).await.map_err(|e| e.to_string())?,
            self.image(&owner, &vm.spec.image).await.map_err(|e| e.to_string())?,
        ) else {
            return Ok(None);
        };
        let grant = Grant { vcpus: flavor.vcpus, memory_mib: flavor.memory_mib };
        if status.grant.is_none_or(|g| g == grant) {
            return Ok(None);
        }
        let (mut held, versions) = self.allocations().await?;
        let uid = vm.metadata.uid.clone();
        let Some(mut share) = held.get_mut(node).and_then(|record| record.vms.remove(&uid)) else { return Ok(None) };
        let request = Request::of(vm, &flavor, &image);
        let nodes = self.nodes().into_iter().filter(|(name, _)| name == node).collect();
        if let Err(why) = place::choose(&nodes, &held, &request, &self.policy) {
            let reason = format!("flavor {} does not fit on its node any more: {why}", vm.spec.flavor);
            let mut change = |_: &Resource<VmSpec>, s: &VmStatus| {
                let mut next = s.clone();
                next.enter(State::Error, Some(reason.clone()));
                (next != *s).then_some(next)
            };
            status::write(&self.store, key, &mut change, &status::unguarded).await.map_err(|e| e.to_string())?;
            return Ok(Some(Requeue::Done));
        }
        share.grant = grant;
        let mut record = held.remove(node).unwrap_or_default();
        record.vms.insert(uid.clone(), share);
        let version = versions.get(node).copied();
        let guard = |tx: Tx| allocations::put(tx, node, &record, version);
        let mut change = |current: &Resource<VmSpec>, s: &VmStatus| {
            if current.metadata.uid != uid || s.node.as_deref() != Some(node) {
                return None;
            }
            let mut next = s.clone();
            next.grant = Some(grant);
            // A resize that did not fit before and fits now clears that error.
            if next.state == State::Error {
                next.enter(State::Stopped, None);
            }
            Some(next)
        };
        match status::write(&self.store, key, &mut change, &guard).await {
            Ok(true) => {
                tracing::info!(vm = %key, %node, vcpus = grant.vcpus, memory_mib = grant.memory_mib, "VM resized: its share of the node changed");
                Ok(Some(Requeue::Done))
            }
            Ok(false) => Ok(Some(Requeue::After(Duration::from_millis(1)))),
            Err(ResourceError::NotFound { .. }) => Ok(Some(Requeue::Done)),
            Err(e) => Err(e.to_string()),
        }
    }
}
