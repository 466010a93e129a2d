//! The scheduler: run by whichever node holds the claim `/photoncloud/plasmavmc/scheduler`, it
//! places every pending VM on a node (`place`), committing the placement and the node's
//! allocation in one compare-and-swap (`allocations`), and handles VMs whose node died by
//! their restart policy: marked `error`, or placed again elsewhere. A sweep gives back what
//! deleted VMs held. It also imports newly registered images (`crate::import`): a VM is placed
//! once its image is ready. It is a photon-reconcile reconciler over VM and image keys and the
//! sweep.

pub mod allocations;
mod migrate;
pub mod place;
mod resize;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use photon_reconcile::{Queue, Reconciler, Requeue};
use photon_resource::{Change, Kind, Mirror, Owner, Resource, ResourceError, Store, Tx};

use crate::model::status::{self, Grant, State, VmStatus};
use crate::model::vm::{RestartPolicy, VmSpec};
use crate::import::Importer;
use crate::model::image::{self, ImageSpec, ImageState, ImageStatus};
use crate::model::status::Observed;
use crate::model::{Flavor, Image};
use crate::network::{self, Network, PortRef};
use crate::storage::Storage;
use crate::nodes::{self, NodeView};
use allocations::{Allocation, Held};
use place::{Policy, Request};

pub const CLAIM: &str = "/photoncloud/plasmavmc/scheduler";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// Allocations of VMs that no longer exist, given back (first: what it frees, the VMs
    /// after it may use).
    Sweep,
    /// An image being imported.
    Image(String),
    Vm(String),
}

#[derive(Default)]
struct Copies {
    plasmavmc: Mirror,
    members: Mirror,
}

pub struct Scheduler {
    store: Store,
    layout: photon_resource::Layout,
    policy: Policy,
    /// PrismNET and LightningStor as PlasmaVMC's account, to delete what deleted VMs owned.
    network: Option<Network>,
    storage: Option<Storage>,
    importer: Arc<Importer>,
    held: AtomicBool,
    copies: Mutex<Copies>,
    queue: Arc<Queue<Key>>,
}

impl Scheduler {
    pub fn new(
        store: Store,
        layout: photon_resource::Layout,
        policy: Policy,
        network: Option<Network>,
        storage: Option<Storage>,
        importer: Arc<Importer>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            layout,
            policy,
            network,
            storage,
            importer,
            held: AtomicBool::new(false),
            copies: Mutex::new(Copies::default()),
            queue: Arc::new(Queue::default()),
        })
    }

    pub fn queue(&self) -> Arc<Queue<Key>> {
        self.queue.clone()
    }

    fn copies(&self) -> MutexGuard<'_, Copies> {
        self.copies.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes under `/photoncloud/plasmavmc/`: VMs, nodes, presences, allocations.
    pub fn apply(&self, changes: Vec<Change>) {
        self.copies().plasmavmc.apply(changes);
        self.wake();
    }

    /// Changes of the membership table.
    pub fn apply_members(&self, changes: Vec<Change>) {
        self.copies().members.apply(changes);
        self.wake();
    }

    /// Every VM is looked at again (cheap: a placed VM on a live node is done at once).
    fn wake(&self) {
        if self.held.load(Ordering::SeqCst) {
            self.queue.push_all(self.keys());
        }
    }

    pub fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
        if held {
            tracing::info!("this node schedules VMs now");
            self.wake();
        }
    }

    pub fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// The nodes as the followed copies show them.
    pub fn nodes(&self) -> BTreeMap<String, NodeView> {
        let copies = self.copies();
        nodes::view(&copies.plasmavmc, &copies.members)
    }

    fn vm(&self, key: &str) -> Option<Resource<VmSpec>> {
        let copies = self.copies();
        crate::model::followed(&copies.plasmavmc, key)
    }

    /// A flavour's or image's spec.
    async fn get<K: Kind>(&self, owner: &Owner, name: &str) -> Result<Option<K::Spec>, ResourceError> {
        Ok(self.resource::<K>(owner, name).await?.map(|r| r.spec))
    }

    /// The spec of the image a VM of `owner`'s names (its project's, or a public one).
    async fn image(&self, owner: &Owner, reference: &str) -> Result<Option<ImageSpec>, ResourceError> {
        let (owner, name) = image::locate(owner, reference);
        self.get::<Image>(&owner, name).await
    }

    /// A flavour or image: from the followed copy when it has it, else from the store.
    async fn resource<K: Kind>(&self, owner: &Owner, name: &str) -> Result<Option<Resource<K::Spec>>, ResourceError> {
        let key = self.layout.key(owner, K::PATH, &[], name);
        self.at::<K>(&key).await
    }

    async fn at<K: Kind>(&self, key: &str) -> Result<Option<Resource<K::Spec>>, ResourceError> {
        let copied = crate::model::followed::<Resource<K::Spec>>(&self.copies().plasmavmc, key);
        if let Some(found) = copied {
            return Ok(Some(found));
        }
        Ok(self.store.get::<Resource<K::Spec>>(key).await?.map(|r| r.value))
    }

    /// Marks the VM at `key` `error` with `reason`, giving back its placement.
    async fn fail(&self, key: &str, reason: String) -> Result<Requeue, String> {
        tracing::warn!(vm = %key, %reason, "VM cannot be placed");
        let mut change = |_: &Resource<VmSpec>, s: &VmStatus| {
            let mut next = s.clone();
            next.node = None;
            next.grant = None;
            next.enter(State::Error, Some(reason.clone()));
            Some(next)
        };
        status::write(&self.store, key, &mut change, &status::unguarded).await.map_err(|e| e.to_string())?;
        self.queue.push(Key::Sweep);
        Ok(Requeue::Done)
    }

    /// Leaves the VM at `key` pending, saying why.
    async fn wait(&self, key: &str, reason: String) -> Result<Requeue, String> {
        let mut change = |_: &Resource<VmSpec>, s: &VmStatus| {
            let mut next = s.clone();
            next.enter(State::Pending, Some(reason.clone()));
            (next != *s).then_some(next)
        };
        status::write(&self.store, key, &mut change, &status::unguarded).await.map_err(|e| e.to_string())?;
        Ok(Requeue::After(Duration::from_secs(2)))
    }

    async fn place(&self, key: &str, vm: &Resource<VmSpec>, from: Option<&str>) -> Result<Requeue, String> {
        let owner = vm.metadata.owner();
        let fail = |what: &str, name: &str| format!("{what} {name} does not exist in project {}", owner.path());
        let Some(flavor) = self.get::<Flavor>(&owner, &vm.spec.flavor).await.map_err(|e| e.to_string())? else {
            return self.fail(key, fail("flavor", &vm.spec.flavor)).await;
        };
        let (image_owner, image_name) = image::locate(&owner, &vm.spec.image);
        let Some(image) = self.resource::<Image>(&image_owner, image_name).await.map_err(|e| e.to_string())? else {
            return self.fail(key, fail("image", &vm.spec.image)).await;
        };
        let imported = ImageStatus::of(&image);
        match imported.state {
            ImageState::Ready => {}
            // Placed once it is ready (the image's change wakes every VM).
            ImageState::Importing => return self.wait(key, format!("image {} is being imported", vm.spec.image)).await,
            ImageState::Error => {
                let why = imported.reason.unwrap_or_default();
                return self.fail(key, format!("image {} could not be imported: {why}", vm.spec.image)).await;
            }
        }
        let image = image.spec;
        let request = Request::of(vm, &flavor, &image);
        let group = request.group.clone();
        let mut nodes = self.nodes();
        if let Some(from) = from {
            nodes.remove(from);
        }
        let (mut held, mut versions) = self.allocations().await?;
        let uid = vm.metadata.uid.clone();
        let ports = network::planned(vm);
        if claimed_by_another(&held, &uid, &ports) {
            // A deleted VM of the same name still owns them: its ports go first.
            self.sweep().await?;
            (held, versions) = self.allocations().await?;
            if claimed_by_another(&held, &uid, &ports) {
                tracing::info!(vm = %key, "waiting for a deleted VM of the same name to give back its ports");
                return Ok(Requeue::After(Duration::from_millis(500)));
            }
        }
        let node = match place::choose(&nodes, &held, &request, &self.policy) {
            Ok(node) => node,
            Err(_) => {
                // What deleted VMs held may not be given back yet: sweep, then look again.
                self.sweep().await?;
                (held, versions) = self.allocations().await?;
                match place::choose(&nodes, &held, &request, &self.policy) {
                    Ok(node) => node,
                    Err(why) => return self.fail(key, why).await,
                }
            }
        };
        let grant = Grant { vcpus: flavor.vcpus, memory_mib: flavor.memory_mib };
        let mut target = held.get(&node).cloned().unwrap_or_default();
        let attachments = crate::storage::planned(vm);
        target.vms.insert(uid.clone(), Held { key: key.to_string(), grant, group, ports, attachments });
        let target_version = versions.get(&node).copied();
        // A move gives back the old node's share in the same transaction.
        let source = from.and_then(|from| {
            let mut left = held.get(from)?.clone();
            left.vms.remove(&uid)?;
            Some((from, left, versions.get(from).copied()?))
        });
        let guard = |tx: Tx| -> Result<Tx, ResourceError> {
            let tx = allocations::put(tx, &node, &target, target_version)?;
            match &source {
                Some((from, left, version)) => allocations::put(tx, from, left, Some(*version)),
                None => Ok(tx),
            }
        };
        let expected_uid = uid.clone();
        let reason = from.map(|from| format!("node {from} died; restarted elsewhere"));
        let mut change = |current: &Resource<VmSpec>, s: &VmStatus| {
            // Deleted and created again under the same name meanwhile: not this VM any more.
            if current.metadata.uid != expected_uid {
                return None;
            }
            let mut next = s.clone();
            next.node = Some(node.clone());
            next.grant = Some(grant);
            next.placements += 1;
            // A migration under way when the node died ends with it.
            next.migration = None;
            next.enter(State::Scheduled, reason.clone());
            Some(next)
        };
        match status::write(&self.store, key, &mut change, &guard).await {
            Ok(true) => {
                tracing::info!(vm = %key, %node, vcpus = grant.vcpus, memory_mib = grant.memory_mib, "VM placed");
                Ok(Requeue::Done)
            }
            // Another placement took the node's record first: choose again from a fresh look.
            Ok(false) => Ok(Requeue::After(Duration::from_millis(1))),
            Err(ResourceError::NotFound { .. }) => Ok(Requeue::Done),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Every node's grants as stored, and each record's revision.
    async fn allocations(&self) -> Result<(BTreeMap<String, Allocation>, BTreeMap<String, i64>), String> {
        let mut held = BTreeMap::new();
        let mut versions = BTreeMap::new();
        for found in self.store.list_all::<Allocation>(&allocations::prefix()).await.map_err(|e| e.to_string())? {
            let node = found.key.strip_prefix(&allocations::prefix()).unwrap_or_default().to_string();
            versions.insert(node.clone(), found.version);
            held.insert(node, found.value);
        }
        Ok((held, versions))
    }

    /// Deletes what a deleted VM owned elsewhere (its ports, its volumes' attachments);
    /// whether all of it is gone.
    async fn release(&self, held: &Held) -> bool {
        let mut all = true;
        if !held.ports.is_empty() {
            match &self.network {
                Some(net) => {
                    for port in &held.ports {
                        match net.delete(port).await {
                            Ok(()) => tracing::info!(port = %port.path(), project = %format!("{}/{}", port.org, port.project), "deleted a deleted VM's port"),
                            Err(e) => {
                                tracing::warn!(port = %port.path(), error = %e, "cannot delete a deleted VM's port yet");
                                all = false;
                            }
                        }
                    }
                }
                None => tracing::warn!(vm = %held.key, "a deleted VM's ports stay: this node has no PlasmaVMC service account (iam.credentials_file)"),
            }
        }
        if !held.attachments.is_empty() {
            match &self.storage {
                Some(storage) => {
                    for attachment in &held.attachments {
                        match storage.detach(attachment).await {
                            Ok(()) => tracing::info!(volume = %attachment.volume, attachment = %attachment.name, "deleted a deleted VM's attachment"),
                            Err(e) => {
                                tracing::warn!(volume = %attachment.volume, error = %e, "cannot delete a deleted VM's attachment yet");
                                all = false;
                            }
                        }
                    }
                }
                None => tracing::warn!(vm = %held.key, "a deleted VM's attachments stay: this node has no PlasmaVMC service account (iam.credentials_file)"),
            }
        }
        all
    }

    /// Gives back allocations of VMs that are gone or live elsewhere now.
    async fn sweep(&self) -> Result<Requeue, String> {
        // Each VM's node, and the node a live migration is taking it to (held there too).
        let vms: BTreeMap<String, (Option<String>, Option<String>)> = crate::model::followed_vms(&self.copies().plasmavmc)
            .map(|(_, vm)| {
                let status = VmStatus::of(&vm);
                (vm.metadata.uid.clone(), (status.node, status.migration.map(|m| m.target)))
            })
            .collect();
        let mut retry = false;
        for found in self.store.list_all::<Allocation>(&allocations::prefix()).await.map_err(|e| e.to_string())? {
            let node = found.key.strip_prefix(&allocations::prefix()).unwrap_or_default().to_string();
            let mut kept = found.value.clone();
            for (uid, held) in &found.value.vms {
                let holds = |(on, target): &(Option<String>, Option<String>)| {
                    on.as_deref() == Some(node.as_str()) || target.as_deref() == Some(node.as_str())
                };
                if vms.get(uid).is_some_and(holds) {
                    continue;
                }
                // The copy may lag the store (a placement committed but not yet seen): only the
                // VM as stored now says it is gone or elsewhere.
                let stored = self.store.get::<Resource<VmSpec>>(&held.key).await.map_err(|e| e.to_string())?;
                let stored = stored.filter(|vm| vm.value.metadata.uid == *uid);
                let migrating_here = stored.as_ref().is_some_and(|vm| {
                    VmStatus::of(&vm.value).migration.is_some_and(|m| m.target == node)
                });
                if migrating_here {
                    continue;
                }
                let on = stored.as_ref().map(|vm| VmStatus::of(&vm.value).node);
                // Here still; or placed nowhere (in error since its node died) but owning ports or
                // attachments, which this record keeps track of until the VM is deleted.
                let owns = !held.ports.is_empty() || !held.attachments.is_empty();
                if on.as_ref().is_some_and(|on| on.as_deref() == Some(node.as_str()) || (on.is_none() && owns)) {
                    continue;
                }
                // Gone (not moved elsewhere, where its ports follow it): its ports go first, and
                // its share is kept until they have.
                if stored.is_none() && !self.release(held).await {
                    retry = true;
                    continue;
                }
                kept.vms.remove(uid);
            }
            if kept != found.value {
                let tx = Tx::new().update(&found.key, &kept, found.version).map_err(|e| e.to_string())?;
                if self.store.commit(tx).await.map_err(|e| e.to_string())?.is_none() {
                    return Ok(Requeue::After(Duration::from_millis(50)));
                }
                tracing::info!(%node, freed = found.value.vms.len() - kept.vms.len(), "gave back what deleted VMs held");
            }
        }
        if let Err(e) = self.importer.sweep().await {
            tracing::warn!(error = %e, "cannot sweep deleted images' parts from the platform bucket yet");
        }
        Ok(if retry { Requeue::After(Duration::from_secs(1)) } else { Requeue::Done })
    }
}

/// Whether a VM other than `uid` still owns one of `ports`.
fn claimed_by_another(held: &BTreeMap<String, Allocation>, uid: &str, ports: &[PortRef]) -> bool {
    !ports.is_empty()
        && held.values().flat_map(|a| &a.vms).any(|(other, h)| other != uid && h.ports.iter().any(|p| ports.contains(p)))
}

impl Reconciler for Scheduler {
    type Key = Key;

    fn keys(&self) -> Vec<Key> {
        let copies = self.copies();
        let mut keys: Vec<Key> = crate::model::followed_vms(&copies.plasmavmc).map(|(key, _)| Key::Vm(key.clone())).collect();
        keys.extend(
            crate::model::followed_images(&copies.plasmavmc)
                .filter(|(_, image)| ImageStatus::of(image).state == ImageState::Importing)
                .map(|(key, _)| Key::Image(key.clone())),
        );
        keys.push(Key::Sweep);
        keys
    }

    async fn reconcile(&self, key: &Key) -> Result<Requeue, String> {
        if !self.held() {
            return Ok(Requeue::Done);
        }
        let key = match key {
            Key::Sweep => return self.sweep().await,
            Key::Image(key) => {
                let Some(image) = self.at::<Image>(key).await.map_err(|e| e.to_string())? else { return Ok(Requeue::Done) };
                return self.importer.reconcile(key, &image).await.map_err(|e| e.to_string());
            }
            Key::Vm(key) => key,
        };
        let Some(vm) = self.vm(key) else { return Ok(Requeue::Done) };
        let status = VmStatus::of(&vm);
        match (&status.node, status.state) {
            (None, State::Pending) => self.place(key, &vm, None).await,
            (None, _) => Ok(Requeue::Done),
            (Some(node), _) => {
                let dead = self.nodes().get(node).is_none_or(|n| n.dead());
                if !dead {
                    if let Some(requeue) = self.regrant(key, &vm, node, &status).await? {
                        return Ok(requeue);
                    }
                    return self.migrate(key, &vm, node, &status).await;
                }
                match vm.spec.restart_policy {
                    RestartPolicy::Elsewhere => self.place(key, &vm, Some(node)).await,
                    RestartPolicy::Never if status.state == State::Error => Ok(Requeue::Done),
                    RestartPolicy::Never => self.fail(key, format!("node {node} died (restart_policy: never)")).await,
                }
            }
        }
    }
}
