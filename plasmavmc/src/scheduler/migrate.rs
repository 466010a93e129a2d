//! Live migration, the scheduler's part: when a running VM's `spec.migrations` is ahead of
//! its status, a target node is chosen as for a placement (never the VM's own) and reserved
//! — its grant written into the target's allocation record in the same transaction as the
//! VM's `status.migration` — and the agents take over (the target's listens, the source's
//! sends). When the source reports the end, the VM is switched to the target, the source's
//! grant given back, in one transaction; a failed migration gives the reservation back.

use std::time::Duration;

use photon_reconcile::Requeue;
use photon_resource::{Resource, ResourceError, Tx};

use super::allocations;
use super::place::{self, Request};
use super::Scheduler;
use crate::model::status::{self, Migration, MigrationRecord, Phase, State, VmStatus};
use crate::model::vm::VmSpec;
use crate::model::Flavor;

impl Scheduler {
    /// Starts, finishes or gives up the VM's live migration, as its status asks.
    pub(super) async fn migrate(&self, key: &str, vm: &Resource<VmSpec>, node: &str, status: &VmStatus) -> Result<Requeue, String> {
        match &status.migration {
            None if vm.spec.migrations > status.migrations && status.state == State::Running => self.begin(key, vm, node).await,
            None => Ok(Requeue::Done),
            Some(m) if m.phase == Phase::Completed => self.finish(key, vm, node, m, None).await,
            Some(m) if m.phase == Phase::Failed => {
                let why = m.reason.clone().unwrap_or_else(|| "the migration failed".into());
                self.finish(key, vm, node, m, Some(why)).await
            }
            Some(m) => {
                let gone = self.nodes().get(&m.target).is_none_or(|n| n.dead());
                if gone {
                    return self.finish(key, vm, node, m, Some(format!("target node {} died", m.target))).await;
                }
                Ok(Requeue::Done)
            }
        }
    }

    /// Records a migration that could not even start; the VM stays where it is.
    async fn refuse(&self, key: &str, node: &str, target: Option<String>, reason: String) -> Result<Requeue, String> {
        tracing::warn!(vm = %key, %reason, "VM cannot migrate");
        let mut change = |current: &Resource<VmSpec>, s: &VmStatus| {
            let mut next = s.clone();
            next.migrations = current.spec.migrations;
            next.last_migration = Some(MigrationRecord {
                from: node.to_string(),
                to: target.clone().unwrap_or_default(),
                succeeded: false,
                downtime_ms: None,
                total_ms: None,
                reason: Some(reason.clone()),
                at_ms: photon_resource::meta::now_ms(),
            });
            Some(next)
        };
        status::write(&self.store, key, &mut change, &status::unguarded).await.map_err(|e| e.to_string())?;
        Ok(Requeue::Done)
    }

    async fn begin(&self, key: &str, vm: &Resource<VmSpec>, node: &str) -> Result<Requeue, String> {
        let owner = vm.metadata.owner();
        let (Some(flavor), Some(image)) = (
            self.get::<Flavor>(&owner, &vm.spec.flavor).await.map_err(|e| e.to_string())?,
            self.image(&owner, &vm.spec.image).await.map_err(|e| e.to_string())?,
        ) else {
            return self.refuse(key, node, None, "its flavour or image no longer exists".into()).await;
        };
        if vm.spec.root_volume.is_none() {
            // Its disk is a file on this node: only a disk every node reaches moves live.
            return self.refuse(key, node, None, "its root disk is local to the node (live migration needs root_volume)".into()).await;
        }
        let request = Request::of(vm, &flavor, &image);
        let mut nodes = self.nodes();
        nodes.remove(node);
        if let Some(wanted) = &vm.spec.migrate_to {
            if wanted == node {
                return self.refuse(key, node, Some(wanted.clone()), format!("it runs on {node} already")).await;
            }
            nodes.retain(|name, _| name == wanted);
            if nodes.is_empty() {
                return self.refuse(key, node, Some(wanted.clone()), format!("node {wanted} is not a live PlasmaVMC node")).await;
            }
        }
        let (held, versions) = self.allocations().await?;
        let target = match place::choose(&nodes, &held, &request, &self.policy) {
            Ok(target) => target,
            Err(why) => return self.refuse(key, node, vm.spec.migrate_to.clone(), why).await,
        };
        let uid = vm.metadata.uid.clone();
        // The same share (ports, attachments) on the target as on the source.
        let Some(share) = held.get(node).and_then(|a| a.vms.get(&uid)).cloned() else {
            return Err(format!("{key} has no share in {node}'s allocation record"));
        };
        let mut record = held.get(&target).cloned().unwrap_or_default();
        record.vms.insert(uid.clone(), share);
        let version = versions.get(&target).copied();
        let guard = |tx: Tx| allocations::put(tx, &target, &record, version);
        let migration = Migration {
            target: target.clone(),
            phase: Phase::Prepare,
            uri: None,
            started_ms: photon_resource::meta::now_ms(),
            downtime_ms: None,
            total_ms: None,
            reason: None,
        };
        let mut change = |current: &Resource<VmSpec>, s: &VmStatus| {
            if current.metadata.uid != uid || s.migration.is_some() || s.node.as_deref() != Some(node) {
                return None;
            }
            let mut next = s.clone();
            next.migration = Some(migration.clone());
            Some(next)
        };
        match status::write(&self.store, key, &mut change, &guard).await {
            Ok(true) => {
                tracing::info!(vm = %key, from = %node, to = %target, "live migration: target reserved");
                Ok(Requeue::Done)
            }
            Ok(false) => Ok(Requeue::After(Duration::from_millis(1))),
            Err(ResourceError::NotFound { .. }) => Ok(Requeue::Done),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Ends the migration: on success (`failure` None) the VM is the target's and the source's
    /// share given back; otherwise the target's reservation is.
    async fn finish(&self, key: &str, vm: &Resource<VmSpec>, node: &str, m: &Migration, failure: Option<String>) -> Result<Requeue, String> {
        let uid = vm.metadata.uid.clone();
        let (held, versions) = self.allocations().await?;
        let freed = if failure.is_none() { node } else { m.target.as_str() };
        let write = held.get(freed).and_then(|record| {
            let mut record = record.clone();
            record.vms.remove(&uid)?;
            Some((record, *versions.get(freed)?))
        });
        let guard = |tx: Tx| match &write {
            Some((record, version)) => allocations::put(tx, freed, record, Some(*version)),
            None => Ok(tx),
        };
        let expected = m.clone();
        let mut change = |current: &Resource<VmSpec>, s: &VmStatus| {
            if current.metadata.uid != uid || s.migration.as_ref() != Some(&expected) {
                return None;
            }
            let mut next = s.clone();
            next.migration = None;
            next.migrations = current.spec.migrations;
            next.last_migration = Some(MigrationRecord {
                from: node.to_string(),
                to: expected.target.clone(),
                succeeded: failure.is_none(),
                downtime_ms: expected.downtime_ms,
                total_ms: expected.total_ms,
                reason: failure.clone(),
                at_ms: photon_resource::meta::now_ms(),
            });
            if failure.is_none() {
                next.node = Some(expected.target.clone());
            }
            Some(next)
        };
        match status::write(&self.store, key, &mut change, &guard).await {
            Ok(true) => {
                match &failure {
                    None => tracing::info!(vm = %key, from = %node, to = %m.target, downtime_ms = m.downtime_ms, total_ms = m.total_ms, "live migration done: the VM runs on its new node"),
                    Some(why) => tracing::warn!(vm = %key, from = %node, to = %m.target, reason = %why, "live migration failed: the VM stays"),
                }
                Ok(Requeue::Done)
            }
            Ok(false) => Ok(Requeue::After(Duration::from_millis(1))),
            Err(ResourceError::NotFound { .. }) => Ok(Requeue::Done),
            Err(e) => Err(e.to_string()),
        }
    }
}
