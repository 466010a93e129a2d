//! Whom each VM's QEMU runs as: a uid of its own (`qemu_uid_base` + 1, + 2, ...; no account
//! needed), in the group `qemu_uid_base` shared by all QEMUs, with /dev/kvm's group beside it,
//! never root. A VM's run directory belongs to its QEMU's uid (0700), so one QEMU cannot read
//! another VM's disk, console or sockets; image parts in the cache are readable by the QEMUs'
//! group. The agent, root with CAP_DAC_OVERRIDE, still reaches into every run directory.
//!
//! Where the agent is not root (a development `photonctl up` as a user), or where QEMU's uids
//! could not reach the run directory (a parent other users cannot enter, such as /root), QEMU
//! runs as the agent's own user; the log and `/health` say so, and why.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;

/// The file in a VM's run directory naming its QEMU's uid.
const UID_FILE: &str = "qemu-uid";
/// VMs a node can hold at once with uids of their own.
const SPAN: u32 = 65_536;

/// Whom one VM's QEMU runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// /dev/kvm's group, when it has one other than root's.
    pub kvm_gid: Option<u32>,
}

pub struct Users {
    /// The QEMUs' group (and uids above it); `None`: QEMU runs as the agent.
    base: Option<u32>,
    kvm_gid: Option<u32>,
    /// Why QEMU runs as the agent, if it does.
    why_not: Option<String>,
    /// One uid handed out at a time.
    assigning: Mutex<()>,
}

impl Users {
    /// QEMUs as uids above `base` (0: as the agent), if the agent can switch to them and they
    /// can reach `run_dir` and `cache` (made theirs here).
    pub fn new(base: u32, run_dir: &Path, cache: &Path) -> Self {
        let kvm_gid = std::fs::metadata("/dev/kvm").ok().map(|m| m.gid()).filter(|g| *g != 0);
        let decided = if base == 0 {
            Err("agent.qemu_uid_base = 0".to_string())
        } else if base.checked_add(SPAN).is_none() {
            Err(format!("agent.qemu_uid_base {base} leaves no room for {SPAN} uids"))
        } else if !running_as_root() {
            Err("the agent does not run as root, so it cannot start QEMU as another user".to_string())
        } else {
            reachable(run_dir).and_then(|()| reachable(cache)).and_then(|()| prepare(run_dir, cache, base))
        };
        match decided {
            Ok(()) => Self { base: Some(base), kvm_gid, why_not: None, assigning: Mutex::new(()) },
            Err(why) => Self { base: None, kvm_gid, why_not: Some(why), assigning: Mutex::new(()) },
        }
    }

    /// What `/health` and the log say.
    pub fn describe(&self) -> String {
        match (self.base, &self.why_not) {
            (Some(base), _) => format!("a uid of its own per VM (from {}), group {base}", base + 1),
            (None, why) => format!("as the agent's own user: {}", why.as_deref().unwrap_or("configured so")),
        }
    }

    /// The identity of the QEMU of the VM whose run directory is `dir` (kept there, so it is
    /// the same across restarts and agents); `None`: QEMU runs as the agent.
    pub fn identity(&self, dir: &Path) -> io::Result<Option<Identity>> {
        let Some(base) = self.base else { return Ok(None) };
        let _one = self.assigning.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(uid) = recorded(dir) {
            return Ok(Some(Identity { uid, gid: base, kvm_gid: self.kvm_gid }));
        }
        let parent = dir.parent().ok_or_else(|| io::Error::other("a run directory has a parent"))?;
        let taken: Vec<u32> = std::fs::read_dir(parent)?.filter_map(|e| e.ok()).filter_map(|e| recorded(&e.path())).collect();
        let uid = (base + 1..base + SPAN)
            .find(|uid| !taken.contains(uid))
            .ok_or_else(|| io::Error::other(format!("all {SPAN} QEMU uids from {} are taken", base + 1)))?;
        std::fs::write(dir.join(UID_FILE), uid.to_string())?;
        Ok(Some(Identity { uid, gid: base, kvm_gid: self.kvm_gid }))
    }

    /// The QEMUs' group, which reads the image cache (`None`: QEMU runs as the agent).
    pub fn group(&self) -> Option<u32> {
        self.base
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Gives `dir` and everything in it to `id`'s uid: the agent made the files, QEMU opens them.
/// What is QEMU's already is left as it is (the agent, not its owner, may not change its mode).
pub fn hand_over(dir: &Path, id: &Identity) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.uid() != id.uid {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        std::os::unix::fs::lchown(dir, Some(id.uid), Some(id.gid))?;
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            hand_over(&path, id)?;
        } else if meta.uid() != id.uid || meta.gid() != id.gid {
            std::os::unix::fs::lchown(&path, Some(id.uid), Some(id.gid))?;
        }
    }
    Ok(())
}

/// Copies `from` to `to` as a new file of the agent's (handed over after): copying onto a file
/// QEMU owns would change its mode, which only its owner may.
pub fn copy_in(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::remove_file(to) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::copy(from, to).map(|_| ())
}

fn recorded(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(UID_FILE)).ok()?.trim().parse().ok()
}

/// Whether a user with no rights of its own can walk down to `dir`.
fn reachable(dir: &Path) -> Result<(), String> {
    let full = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    for ancestor in full.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor).map_err(|e| format!("{}: {e}", ancestor.display()))?.mode();
        if mode & 0o001 == 0 {
            return Err(format!(
                "QEMU's uids cannot enter {} (mode {:o}); let others enter it (chmod o+x) or put the data directory elsewhere",
                ancestor.display(),
                mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// The run directory enterable by every QEMU (each VM's own directory is its QEMU's alone),
/// the image cache by their group alone.
fn prepare(run_dir: &Path, cache: &Path, base: u32) -> Result<(), String> {
    let set = |path: &Path, mode: u32, group: Option<u32>| -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(0), group)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    };
    set(run_dir, 0o711, Some(0)).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    set(cache, 0o750, Some(base)).map_err(|e| format!("{}: {e}", cache.display()))
}
