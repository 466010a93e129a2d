//! The node agent: a photon-reconcile reconciler over the VMs placed on this node (and the run
//! directories it finds, which may belong to VMs gone since). For each it converges what runs
//! here on what the VM's spec asks — QEMU started (image parts fetched, disk made) or ended,
//! the ACPI power button then a forced end for a stop, a reset per reboot — and writes what it
//! sees into the VM's status. QEMU runs in a session of its own, so the agent can restart (or
//! be killed) under running guests: it finds each again by its pid file and QMP socket.

pub mod accel;
pub mod cgroups;
pub mod disks;
pub mod images;
mod hotplug;
mod migration;
pub mod qemu;
pub mod qmp;
pub mod seed;
pub mod taps;
pub mod users;

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use photon_reconcile::{Queue, Reconciler, Requeue};
use photon_resource::{Kind, Layout, Mirror, Resource, ResourceError, Store};
use serde::{Deserialize, Serialize};

use crate::error::{PlasmavmcError, Result};
use crate::model::flavor::FlavorSpec;
use crate::model::image::{ImageSpec, ImageStatus};
use crate::model::status::Observed;
use crate::model::status::{self, NicStatus, State, VmStatus, VolumeStatus};
use crate::model::vm::{Power, VmSpec};
use crate::model::{Flavor, Image};
use crate::network::{self, Network};
use crate::model::vm::slots;
use crate::network::PortRef;
use crate::scheduler::allocations::{self, Owned};
use crate::storage::{AttachRef, Export, Storage};
use images::ImageCache;
use qemu::{Accel, Machine, NicDevice, Root};
use qmp::Qmp;

/// How often a starting QEMU is looked at until it answers on QMP, and for how long.
const LAUNCH_POLL: Duration = Duration::from_millis(5);
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);

/// A running guest's QEMU is asked how it runs (paused by hand: resumed) at most this often.
const QMP_RECHECK: Duration = Duration::from_secs(5);

/// What the run directory records of its VM (`vm.json`), for an operator looking at the node:
/// the agent itself goes by the directory's name, the VM's uid.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Local {
    key: String,
    uid: String,
}

pub struct Settings {
    pub node: String,
    pub run_dir: PathBuf,
    pub qemu: String,
    pub qemu_img: String,
    pub accel: (Accel, String),
    pub stop_timeout: Duration,
    /// The platform CA, which QEMU checks LightningStor's NBD server against.
    pub ca: Option<PathBuf>,
    /// This node's certificate and key, which a live migration's target serves its stream with.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The address other nodes' QEMUs send a live migration to (the API's advertised host).
    pub migration_host: String,
    /// Where VMs' cgroups (their CPU and memory limits) are made.
    pub cgroups: cgroups::Cgroups,
    /// Memory a VM's QEMU may use beyond its guest's (device emulation, caches), in MiB.
    pub memory_overhead_mib: u64,
    /// Whom VMs' QEMUs run as.
    pub users: users::Users,
    /// Why QEMU runs without its seccomp sandbox, if it does (a QEMU built without it).
    pub unsandboxed: Option<String>,
}

pub struct Agent {
    settings: Settings,
    store: Store,
    layout: Layout,
    images: Arc<ImageCache>,
    /// PrismNET as PlasmaVMC's account (None: no account on this node; VMs with NICs fail).
    network: Option<Network>,
    /// LightningStor as PlasmaVMC's account (None: VMs with volumes fail).
    storage: Option<Storage>,
    copy: Mutex<Mirror>,
    /// VMs asked to power down, and when.
    stopping: Mutex<BTreeMap<String, Instant>>,
    /// Starts under way (image parts fetched, disks made, QEMU spawned) off the queue, so many
    /// VMs start side by side and a slow one holds up no other.
    preparing: Mutex<BTreeMap<String, tokio::task::JoinHandle<Result<tokio::process::Child>>>>,
    /// This agent, for the tasks it spawns.
    me: std::sync::Weak<Agent>,
    /// When each running guest's QEMU was last asked how it runs.
    checked: Mutex<BTreeMap<String, Instant>>,
    /// QEMUs started and not yet answering on QMP, and since when.
    launching: Mutex<BTreeMap<String, (tokio::process::Child, Instant)>>,
    queue: Arc<Queue<String>>,
}

/// Counts for `/health`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Census {
    pub placed: usize,
    pub running: usize,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Agent {
    pub fn new(
        settings: Settings,
        store: Store,
        layout: Layout,
        images: Arc<ImageCache>,
        network: Option<Network>,
        storage: Option<Storage>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            preparing: Mutex::new(BTreeMap::new()),
            settings,
            store,
            layout,
            images,
            network,
            storage,
            copy: Mutex::new(Mirror::default()),
            stopping: Mutex::new(BTreeMap::new()),
            launching: Mutex::new(BTreeMap::new()),
            checked: Mutex::new(BTreeMap::new()),
            queue: Arc::new(Queue::default()),
        })
    }

    pub fn queue(&self) -> Arc<Queue<String>> {
        self.queue.clone()
    }

    pub fn accel(&self) -> &str {
        &self.settings.accel.1
    }

    /// How VMs' QEMUs are limited on this node.
    pub fn limits(&self) -> String {
        self.settings.cgroups.describe()
    }

    /// Whom VMs' QEMUs run as on this node.
    pub fn qemu_user(&self) -> String {
        self.settings.users.describe()
    }

    /// QEMU's seccomp sandbox on this node: on, or off and why.
    pub fn sandbox(&self) -> String {
        match &self.settings.unsandboxed {
            None => format!("on ({})", qemu::SANDBOX),
            Some(why) => format!("off: {why}"),
        }
    }

    /// Gives the VM's run directory to its QEMU's user (what the agent wrote there is read by
    /// QEMU); whom QEMU runs as.
    fn hand_over(&self, dir: &std::path::Path) -> Result<Option<users::Identity>> {
        let failed = |e| PlasmavmcError::io(format!("giving {} to its QEMU's user", dir.display()), e);
        let identity = self.settings.users.identity(dir).map_err(failed)?;
        if let Some(id) = &identity {
            users::hand_over(dir, id).map_err(failed)?;
        }
        Ok(identity)
    }

    /// The resources changed: every VM of this node is looked at again.
    pub fn apply(&self, changes: Vec<photon_resource::Change>) {
        locked(&self.copy).apply(changes);
        self.queue.push_all(self.keys());
    }

    /// VMs placed on this node, by uid: (key, resource).
    fn placed(&self) -> BTreeMap<String, (String, Resource<VmSpec>)> {
        let copy = locked(&self.copy);
        crate::model::followed_vms(&copy)
            .filter(|(_, vm)| {
                let status = VmStatus::of(vm);
                let node = Some(self.settings.node.as_str());
                // Also a VM migrating here: its QEMU waits for the stream on this node.
                status.node.as_deref() == node || status.migration.as_ref().map(|m| m.target.as_str()) == node
            })
            .map(|(key, vm)| (vm.metadata.uid.clone(), (key.clone(), vm)))
            .collect()
    }

    pub fn census(&self) -> Census {
        let placed = self.placed();
        let running = placed.keys().filter(|uid| qemu::running(&self.settings.run_dir.join(uid)).is_some()).count();
        Census { placed: placed.len(), running }
    }

    /// Run directories present, by uid.
    fn local(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.settings.run_dir) else { return Vec::new() };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    }

    async fn resource_of<K: Kind>(&self, owner: &photon_resource::Owner, name: &str) -> Result<Resource<K::Spec>> {
        let key = self.layout.key(owner, K::PATH, &[], name);
        // The followed copy first: a start should not wait on chainfire for what it has.
        let copied = crate::model::followed::<Resource<K::Spec>>(&locked(&self.copy), &key);
        if let Some(found) = copied {
            return Ok(found);
        }
        match self.store.get::<Resource<K::Spec>>(&key).await? {
            Some(found) => Ok(found.value),
            None => Err(ResourceError::NotFound { kind: K::NAME, name: name.to_string() }.into()),
        }
    }

    /// Writes the VM's status as this node sees it, unless it moved or was replaced meanwhile.
    async fn report(&self, key: &str, uid: &str, update: impl Fn(&mut VmStatus) + Send + Sync) -> Result<()> {
        let node = self.settings.node.clone();
        let mut change = |current: &Resource<VmSpec>, s: &VmStatus| {
            if current.metadata.uid != uid || s.node.as_deref() != Some(node.as_str()) {
                return None;
            }
            let mut next = s.clone();
            update(&mut next);
            (next != *s).then_some(next)
        };
        match status::write(&self.store, key, &mut change, &status::unguarded).await {
            Ok(_) | Err(ResourceError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn enter(&self, key: &str, uid: &str, state: State, reason: Option<String>) -> Result<()> {
        let accel = self.settings.accel.1.clone();
        self.report(key, uid, move |s| {
            s.enter(state, reason.clone());
            s.accel = Some(accel.clone());
        })
        .await
    }

    /// Starts the VM: its image's parts fetched, its disk made (kept across stops), QEMU run.
    async fn start(&self, dir: &std::path::Path, key: &str, vm: &Resource<VmSpec>, incoming: bool) -> Result<tokio::process::Child> {
        std::fs::create_dir_all(dir).map_err(|e| PlasmavmcError::io(format!("creating {}", dir.display()), e))?;
        let local = Local { key: key.to_string(), uid: vm.metadata.uid.clone() };
        let record = serde_json::to_vec(&local).unwrap_or_default();
        std::fs::write(dir.join("vm.json"), record).map_err(|e| PlasmavmcError::io("writing vm.json", e))?;
        let flavor: FlavorSpec = self.resource_of::<Flavor>(&vm.metadata.owner(), &vm.spec.flavor).await?.spec;
        let (image_owner, image_name) = crate::model::image::locate(&vm.metadata.owner(), &vm.spec.image);
        let image = self.resource_of::<Image>(&image_owner, image_name).await?;
        // Where the image was imported, its parts are read from the platform bucket.
        let stored = ImageStatus::of(&image).parts;
        let image: ImageSpec = image.spec;
        let kernel = match &image.kernel {
            Some(source) => Some(self.images.get(source, stored.get("kernel")).await?),
            None => None,
        };
        let initrd = match &image.initrd {
            Some(source) => Some(self.images.get(source, stored.get("initrd")).await?),
            None => None,
        };
        let seed = seed::write(dir, vm)?;
        let tls = self.tls(dir)?;
        let limits = cgroups::Limits {
            vcpus: flavor.vcpus,
            memory_bytes: (flavor.memory_mib + self.settings.memory_overhead_mib) * 1024 * 1024,
        };
        let groups = self.settings.cgroups.prepare(&vm.metadata.uid, limits).unwrap_or_else(|e| {
            tracing::warn!(vm = %key, error = %e, "cannot limit the VM's QEMU (its cgroup); it runs unlimited");
            Vec::new()
        });
        let root = match &vm.spec.root_volume {
            Some(volume) => Root::Volume(self.attach(vm, volume).await?),
            None => {
                let base = match &image.disk {
                    Some(source) => Some((self.images.get(source, stored.get("disk")).await?, image.format)),
                    None => None,
                };
                let disk = dir.join(disks::ROOT);
                let base = base.as_ref().map(|(p, f)| (p.as_path(), *f));
                disks::ensure(&self.settings.qemu_img, &disk, base, flavor.disk_gib).await?;
                Root::File(disk)
            }
        };
        // Each volume keeps its slot across starts and on a migration's target.
        let before = VmStatus::of(vm).volumes;
        let mut volumes: Vec<(String, Export, u8)> = Vec::new();
        for volume in &vm.spec.volumes {
            let taken: Vec<u8> = volumes.iter().map(|(_, _, slot)| *slot).collect();
            let slot = VolumeStatus::slot_for(volume, &before, &taken);
            volumes.push((volume.clone(), self.attach(vm, volume).await?, slot));
        }
        let taps = self.plug(key, vm, !incoming).await?;
        if incoming {
            self.migration_tls(dir, true)?;
        }
        let identity = self.hand_over(dir)?;
        let owner = vm.metadata.owner();
        let machine = Machine {
            dir: dir.to_path_buf(),
            name: format!("{}.{}.{}", owner.org, owner.project, vm.metadata.name),
            vcpus: flavor.vcpus,
            memory_mib: flavor.memory_mib,
            accel: self.settings.accel.0,
            root,
            volumes: volumes.clone(),
            tls,
            seed,
            kernel,
            initrd,
            cmdline: image.cmdline.clone(),
            nics: taps.iter().map(|(fd, nic)| NicDevice { fd: fd.as_raw_fd(), mac: nic.mac.clone(), slot: nic.slot }).collect(),
            incoming,
            cgroups: groups,
            identity,
            sandbox: self.settings.unsandboxed.is_none(),
        };
        let child = match machine.spawn(&self.settings.qemu) {
            Ok(child) => child,
            Err(e) => {
                drop(taps);
                self.unplug(key, vm).await;
                return Err(e);
            }
        };
        // QEMU holds the taps now: each goes with it.
        drop(taps);
        let attached: Vec<VolumeStatus> = volumes
            .iter()
            .map(|(volume, _, slot)| VolumeStatus {
                volume: volume.clone(),
                attachment: AttachRef::of(vm, volume).name,
                slot: Some(*slot),
            })
            .collect();
        self.report(key, &vm.metadata.uid, move |s| s.volumes = attached.clone()).await?;
        let pid = child.id().unwrap_or_default();
        tracing::info!(vm = %key, uid = %vm.metadata.uid, pid, vcpus = flavor.vcpus, memory_mib = flavor.memory_mib, accel = %self.settings.accel.1, "started the VM's QEMU");
        Ok(child)
    }

    /// Opens a tap per NIC and makes (or rebinds) its port to it; the taps, and what each
    /// NIC was given (also written into the VM's status).
    /// With `bind` false (a VM migrating in) the taps are opened but the ports stay bound to
    /// the source's until the VM is switched here, and each NIC is as the status has it.
    async fn plug(&self, key: &str, vm: &Resource<VmSpec>, bind: bool) -> Result<Vec<(std::os::fd::OwnedFd, NicStatus)>> {
        if vm.spec.nics.is_empty() {
            return Ok(Vec::new());
        }
        if !bind {
            let nics = VmStatus::of(vm).nics;
            let mut opened = Vec::new();
            for (i, nic) in nics.into_iter().enumerate() {
                let fd = taps::open(&nic.tap).map_err(|e| PlasmavmcError::io(format!("NIC {i}'s tap"), e))?;
                opened.push((fd, nic));
            }
            return Ok(opened);
        }
        let Some(net) = &self.network else {
            return Err(PlasmavmcError::Network(
                "the VM has NICs but this node has no PlasmaVMC service account (iam.credentials_file) to make its ports in PrismNET".into(),
            ));
        };
        let planned = network::planned(vm);
        // NICs detached while the VM was stopped: their ports go now.
        for gone in VmStatus::of(vm).nics.iter().filter(|n| !planned.iter().any(|p| p.path() == n.port)) {
            if let Some(port) = PortRef::at(vm, &gone.port) {
                net.delete(&port).await.map_err(|e| PlasmavmcError::Network(format!("deleting port {}: {e}", gone.port)))?;
                tracing::info!(vm = %key, port = %gone.port, "deleted the port of a NIC detached while the VM was stopped");
            }
        }
        let mut plugged = Vec::new();
        for ((port, nic), slot) in planned.iter().zip(&vm.spec.nics).zip(slots(&vm.spec.nics)) {
            let tap = network::tap_name(&vm.metadata.uid, slot);
            let fd = taps::open(&tap).map_err(|e| PlasmavmcError::io(format!("NIC {slot}'s tap"), e))?;
            let given = net
                .plug(port, nic, slot, &self.settings.node, &tap)
                .await
                .map_err(|e| PlasmavmcError::Network(format!("NIC {slot} (port {}): {e}", port.path())))?;
            tracing::info!(vm = %key, port = %given.port, ip = %given.ip, %tap, "NIC plugged in");
            plugged.push((fd, given));
        }
        let nics: Vec<NicStatus> = plugged.iter().map(|(_, nic)| nic.clone()).collect();
        self.report(key, &vm.metadata.uid, move |s| s.nics = nics.clone()).await?;
        Ok(plugged)
    }

    /// Unbinds the VM's ports from this node's taps (gone with QEMU), so PrismNET stops
    /// looking for them. Failures are logged: the next stop or start tries again.
    async fn unplug(&self, key: &str, vm: &Resource<VmSpec>) {
        let Some(net) = &self.network else { return };
        for (port, slot) in network::planned(vm).iter().zip(slots(&vm.spec.nics)) {
            let tap = network::tap_name(&vm.metadata.uid, slot);
            if let Err(e) = net.unplug(port, &self.settings.node, &tap).await {
                tracing::warn!(vm = %key, port = %port.path(), error = %e, "cannot unbind a stopped VM's port");
            }
        }
    }

    /// Puts the platform CA where QEMU's NBD TLS credentials read it; whether volumes can be
    /// opened (a node without LightningStor's account or a CA runs VMs without volumes).
    fn tls(&self, dir: &std::path::Path) -> Result<bool> {
        let (Some(_), Some(ca)) = (&self.storage, &self.settings.ca) else { return Ok(false) };
        let tls = dir.join(qemu::TLS_DIR);
        std::fs::create_dir_all(&tls).map_err(|e| PlasmavmcError::io(format!("creating {}", tls.display()), e))?;
        users::copy_in(ca, &tls.join("ca-cert.pem")).map_err(|e| PlasmavmcError::io(format!("copying the CA {}", ca.display()), e))?;
        Ok(true)
    }

    /// The VM's attachment of `volume` (recorded as the VM's in this node's allocation first,
    /// so the sweep deletes it with the VM) and where QEMU opens it.
    async fn attach(&self, vm: &Resource<VmSpec>, volume: &str) -> Result<Export> {
        let (Some(storage), Some(_)) = (&self.storage, &self.settings.ca) else {
            return Err(PlasmavmcError::Storage(format!(
                "volume {volume}: this node has no PlasmaVMC service account (iam.credentials_file) or no CA to reach LightningStor"
            )));
        };
        let attachment = AttachRef::of(vm, volume);
        allocations::own(&self.store, &self.settings.node, &vm.metadata.uid, Owned::Attachment(&attachment)).await?;
        storage.attach(&attachment, &self.settings.node).await.map_err(|e| PlasmavmcError::Storage(format!("volume {volume}: {e}")))
    }

    /// Whether a start of the VM is under way (it is let finish, never cut short: a QEMU it
    /// spawned would be lost; what it started is ended after).
    fn preparing(&self, uid: &str) -> bool {
        locked(&self.preparing).get(uid).is_some_and(|start| !start.is_finished())
    }

    /// Ends a QEMU this agent started that has not answered yet.
    fn abandon(&self, uid: &str) {
        if let Some(start) = locked(&self.preparing).remove(uid) {
            // Finished (`preparing` said so): its QEMU, if it spawned one, is ended below or
            // found by its pid file.
            if let Some(Ok(Ok(mut child))) = start.now_or_never() {
                let _ = child.start_kill();
            }
        }
        if let Some((mut child, _)) = locked(&self.launching).remove(uid) {
            let _ = child.start_kill();
        }
    }

    /// Ends what runs for a VM no longer placed here and removes its run directory.
    async fn remove(&self, uid: &str) -> Result<()> {
        let dir = self.settings.run_dir.join(uid);
        self.abandon(uid);
        if !dir.exists() {
            return Ok(());
        }
        qemu::kill(&dir).await;
        self.settings.cgroups.remove(uid);
        std::fs::remove_dir_all(&dir).map_err(|e| PlasmavmcError::io(format!("removing {}", dir.display()), e))?;
        locked(&self.stopping).remove(uid);
        locked(&self.checked).remove(uid);
        tracing::info!(%uid, "removed a VM that is no longer placed on this node (its QEMU ended, its files deleted)");
        Ok(())
    }

    async fn converge(&self, uid: &str) -> Result<Requeue> {
        if self.preparing(uid) {
            return Ok(Requeue::After(LAUNCH_POLL * 4));
        }
        let Some((key, vm)) = self.placed().remove(uid) else {
            self.remove(uid).await?;
            return Ok(Requeue::Done);
        };
        let dir = self.settings.run_dir.join(uid);
        let running = qemu::running(&dir).is_some();
        let status = VmStatus::of(&vm);
        let here = Some(self.settings.node.as_str());
        if let Some(m) = &status.migration {
            if Some(m.target.as_str()) == here && status.node.as_deref() != here {
                return self.incoming(&dir, &key, &vm, m).await;
            }
            if status.node.as_deref() == here && running {
                return self.outgoing(&dir, &key, &vm, m).await;
            }
        }
        if status.node.as_deref() == here && dir.join(migration::ARRIVED).exists() {
            self.arrived(&dir, &key, &vm).await?;
        }
        match vm.spec.power {
            Power::Running => {
                locked(&self.stopping).remove(uid);
                let prepared = locked(&self.preparing).remove(uid);
                if let Some(start) = prepared {
                    let outcome = start.await.unwrap_or_else(|e| Err(PlasmavmcError::qemu("starting QEMU", e.to_string())));
                    match outcome {
                        Ok(child) => {
                            locked(&self.launching).insert(uid.to_string(), (child, Instant::now()));
                            return Ok(Requeue::After(LAUNCH_POLL));
                        }
                        Err(e) => {
                            self.enter(&key, uid, State::Error, Some(e.to_string())).await?;
                            return Err(e);
                        }
                    }
                }
                let pending = locked(&self.launching).remove(uid);
                if let Some((mut child, since)) = pending {
                    if let Ok(Some(exit)) = child.try_wait() {
                        let e = PlasmavmcError::qemu("QEMU exited at start", format!("{exit}: {}", qemu::said(&dir)));
                        self.enter(&key, uid, State::Error, Some(e.to_string())).await?;
                        return Err(e);
                    }
                    if !qemu::answers(&dir).await {
                        if since.elapsed() > LAUNCH_TIMEOUT {
                            let _ = child.start_kill();
                            let e = PlasmavmcError::qemu("QEMU", format!("its QMP socket did not answer within {} s", LAUNCH_TIMEOUT.as_secs()));
                            self.enter(&key, uid, State::Error, Some(e.to_string())).await?;
                            return Err(e);
                        }
                        locked(&self.launching).insert(uid.to_string(), (child, since));
                        return Ok(Requeue::After(LAUNCH_POLL));
                    }
                    // Answering: its handle goes (tokio reaps it whenever it exits).
                } else if !running {
                    if status.state == State::Running {
                        tracing::warn!(vm = %key, "the VM's QEMU is gone (the guest powered off, or QEMU died); starting it again");
                    }
                    if let Some(wait) = start_backoff(&status) {
                        return Ok(Requeue::After(wait));
                    }
                    self.enter(&key, uid, State::Starting, None).await?;
                    let Some(me) = self.me.upgrade() else { return Ok(Requeue::Done) };
                    let (dir, key, vm, id) = (dir.clone(), key.clone(), vm.clone(), uid.to_string());
                    let start = tokio::spawn(async move {
                        let started = me.start(&dir, &key, &vm, false).await;
                        me.queue.push(id);
                        started
                    });
                    locked(&self.preparing).insert(uid.to_string(), start);
                    return Ok(Requeue::After(LAUNCH_POLL * 4));
                }
                // Nothing asked of a running guest looked at lately: QMP is not asked again. Every
                // change of any VM queues all of them, and a QMP handshake with a QEMU busy
                // booting (many at once) would hold up the whole queue.
                let attached: Vec<&String> = status.volumes.iter().map(|v| &v.volume).collect();
                let plugged: Vec<(u8, String)> = status.nics.iter().map(|n| (n.slot, n.port.clone())).collect();
                let planned: Vec<(u8, String)> =
                    slots(&vm.spec.nics).into_iter().zip(network::planned(&vm).iter().map(PortRef::path)).collect();
                let settled = status.state == State::Running
                    && vm.spec.reboots <= status.reboots
                    && vm.spec.volumes.iter().collect::<Vec<_>>() == attached
                    && planned == plugged;
                let fresh = locked(&self.checked).get(uid).is_some_and(|at| at.elapsed() < QMP_RECHECK);
                if settled && fresh {
                    return Ok(Requeue::Done);
                }
                let mut qmp = Qmp::connect(&dir.join(qemu::QMP)).await?;
                if vm.spec.reboots > status.reboots {
                    qmp.execute("system_reset", None).await?;
                    tracing::info!(vm = %key, "reset the VM (reboot)");
                    let reboots = vm.spec.reboots;
                    self.report(&key, uid, move |s| s.reboots = reboots).await?;
                }
                if let Some(requeue) = self.volumes(&key, &vm, &status, &mut qmp).await? {
                    return Ok(requeue);
                }
                if let Some(requeue) = self.nics(&key, &vm, &status, &mut qmp).await? {
                    return Ok(requeue);
                }
                let run = qmp.status().await?;
                locked(&self.checked).insert(uid.to_string(), Instant::now());
                if run.running {
                    self.enter(&key, uid, State::Running, None).await?;
                } else {
                    // Paused by hand, say: resumed, since the spec asks for it running.
                    qmp.execute("cont", None).await?;
                    return Ok(Requeue::After(Duration::from_millis(200)));
                }
                Ok(Requeue::Done)
            }
            Power::Stopped => {
                self.abandon(uid);
                if !running {
                    locked(&self.stopping).remove(uid);
                    if status.state != State::Stopped {
                        self.unplug(&key, &vm).await;
                        self.settings.cgroups.remove(uid);
                    }
                    self.enter(&key, uid, State::Stopped, None).await?;
                    return Ok(Requeue::Done);
                }
                let asked = *locked(&self.stopping).entry(uid.to_string()).or_insert_with(Instant::now);
                if asked.elapsed() >= self.settings.stop_timeout {
                    tracing::warn!(vm = %key, timeout_ms = self.settings.stop_timeout.as_millis() as u64, "the guest did not shut down after the power button; ending it");
                    qemu::kill(&dir).await;
                    return Ok(Requeue::After(Duration::ZERO));
                }
                if status.state != State::Stopping {
                    self.enter(&key, uid, State::Stopping, None).await?;
                    Qmp::connect(&dir.join(qemu::QMP)).await?.execute("system_powerdown", None).await?;
                    tracing::info!(vm = %key, "pressed the VM's power button");
                }
                Ok(Requeue::After(Duration::from_millis(250)))
            }
        }
    }
}

impl Reconciler for Agent {
    type Key = String;

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.placed().into_keys().collect();
        keys.extend(self.local());
        keys.sort();
        keys.dedup();
        keys
    }

    async fn reconcile(&self, uid: &String) -> std::result::Result<Requeue, String> {
        self.converge(uid).await.map_err(|e| e.to_string())
    }
}

/// After starts that failed in a row, how long the next must still wait: 1 s, 2 s, 4 s, ... up to
/// `START_BACKOFF_MAX` after the last failure, so a node missing something (qemu-img, a volume's
/// writer lease not yet free) is not asked ten times a second.
fn start_backoff(status: &VmStatus) -> Option<Duration> {
    if status.state != State::Error {
        return None;
    }
    let recent = status.transitions.iter().rev().take_while(|t| matches!(t.state, State::Error | State::Starting));
    let failures = recent.filter(|t| t.state == State::Error).count().max(1) as u32;
    let wait = Duration::from_secs(1 << (failures - 1).min(5)).min(START_BACKOFF_MAX);
    let failed_at = status.transitions.last().map_or(0, |t| t.at_ms);
    let since = Duration::from_millis(photon_resource::meta::now_ms().saturating_sub(failed_at));
    (since < wait).then(|| wait - since)
}

/// The longest wait between failed starts.
const START_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A QMP error whose text contains `benign` (an add already done, a delete already asked for)
/// is success: the step was taken before (by an earlier call or agent).
fn tolerate(outcome: Result<serde_json::Value>, benign: &str) -> Result<()> {
    match outcome {
        Ok(_) => Ok(()),
        Err(PlasmavmcError::Qmp { message, .. }) if message.contains(benign) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::status::Transition;

    fn after(states: &[State], last_at_ms: u64) -> VmStatus {
        let mut status = VmStatus::default();
        status.transitions = states.iter().map(|&state| Transition { state, at_ms: last_at_ms, reason: None }).collect();
        status.state = *states.last().unwrap_or(&State::Pending);
        status
    }

    #[test]
    fn failed_starts_back_off_doubling_up_to_the_cap() {
        use State::*;
        let now = photon_resource::meta::now_ms();
        let wait = |states: &[State], at| start_backoff(&after(states, at)).map(|d| d.as_secs_f64().round() as u64);
        assert_eq!(wait(&[Pending, Scheduled, Starting, Error], now), Some(1));
        assert_eq!(wait(&[Starting, Error, Starting, Error, Starting, Error], now), Some(4));
        let many: Vec<State> = (0..14).flat_map(|_| [Starting, Error]).collect();
        assert_eq!(wait(&many, now), Some(START_BACKOFF_MAX.as_secs()));
        assert_eq!(wait(&[Starting, Error], now - 60_000), None, "waited long enough");
        assert_eq!(wait(&[Starting, Running], now), None, "not failing");
    }
}
