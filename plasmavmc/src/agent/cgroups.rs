//! Each VM's QEMU in a cgroup of its own, limited to the VM's flavour: its vCPUs as a CPU
//! quota and its memory plus QEMU's own overhead as a memory limit, so one guest cannot take
//! the node from the others or from the agent. The cgroups live under the agent's own (a
//! systemd unit's, delegated to it: `Delegate=` in the unit), named `vm-<uid>`; QEMU enters its cgroup before it runs a
//! single instruction (the child writes itself into it between fork and exec).
//!
//! Both cgroup hierarchies are handled: v2 (unified; the agent moves itself into a leaf
//! `agent` so its parent may hand controllers to the VMs' groups) and v1 (the `cpu` and
//! `memory` hierarchies, each VM's group under `plasmavmc/` in the agent's group in each). Where neither can be
//! written (no delegation, a read-only mount) VMs run unlimited and the agent says why.

use std::ffi::CString;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
/// CFS period, in microseconds.
const PERIOD_US: u64 = 100_000;

/// Where VMs' cgroups are made.
#[derive(Debug, Clone)]
pub enum Cgroups {
    /// The unified hierarchy: VMs' groups under `base`.
    V2 { base: PathBuf },
    /// The `cpu` and `memory` hierarchies: VMs' groups under each base.
    V1 { cpu: PathBuf, memory: PathBuf },
    /// VMs run without limits, for this reason.
    Off(String),
}

/// The limits a VM's group gets.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub vcpus: u32,
    pub memory_bytes: u64,
}

/// This process's group in hierarchy `controller` (v1), or in the unified one (`None`).
fn own_group(controller: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match controller {
            None => controllers.is_empty(),
            Some(wanted) => controllers.split(',').any(|c| c == wanted),
        };
        matches.then(|| path.to_string())
    })
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value).map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

impl Cgroups {
    /// Finds (and on v2 prepares) where this agent can make VMs' groups.
    pub fn detect() -> Self {
        let root = Path::new(ROOT);
        if root.join("cgroup.controllers").exists() {
            return match Self::unified(root) {
                Ok(base) => Self::V2 { base },
                Err(e) => Self::Off(format!("cgroup v2: {e}")),
            };
        }
        let (Some(cpu), Some(memory)) = (own_group(Some("cpu")), own_group(Some("memory"))) else {
            return Self::Off("no cgroup v2 and no cpu and memory hierarchies of v1".into());
        };
        let cpu_root = ["cpu", "cpu,cpuacct"].iter().map(|d| root.join(d)).find(|p| p.join("cpu.cfs_quota_us").exists());
        let Some(cpu_root) = cpu_root else { return Self::Off("cgroup v1 without the cpu controller's files".into()) };
        let bases = (
            cpu_root.join(cpu.trim_start_matches('/')).join("plasmavmc"),
            root.join("memory").join(memory.trim_start_matches('/')).join("plasmavmc"),
        );
        let probe = bases.0.join("plasmavmc-probe");
        match std::fs::create_dir_all(&probe).and_then(|_| std::fs::remove_dir(&probe)) {
            Ok(()) => Self::V1 { cpu: bases.0, memory: bases.1 },
            Err(e) => Self::Off(format!("cgroup v1 is not writable here ({}: {e})", probe.display())),
        }
    }

    /// v2: this process moves to `<own>/agent`, and `<own>` hands cpu and memory to its
    /// children; VMs' groups go beside the agent's.
    fn unified(root: &Path) -> std::io::Result<PathBuf> {
        let own = own_group(None).ok_or_else(|| std::io::Error::other("no unified group in /proc/self/cgroup"))?;
        if own.trim_matches('/').is_empty() {
            // The root group is the whole machine's: it is not rearranged for one service.
            return Err(std::io::Error::other("the agent runs in the root group; run it in a delegated one (Delegate= in its unit)"));
        }
        let mut base = root.join(own.trim_start_matches('/'));
        if base.file_name().is_some_and(|n| n == "agent") {
            base.pop();
        } else {
            let leaf = base.join("agent");
            std::fs::create_dir_all(&leaf)?;
            write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
        }
        write(&base.join("cgroup.subtree_control"), "+cpu +memory")?;
        Ok(base)
    }

    /// Removes VMs' groups left empty (their QEMU ended while no agent ran): a group still
    /// holding a QEMU cannot be removed and stays, for the agent to adopt.
    pub fn tidy(&self) {
        let bases = match self {
            Self::Off(_) => Vec::new(),
            Self::V2 { base } => vec![base.clone()],
            Self::V1 { cpu, memory } => vec![cpu.clone(), memory.clone()],
        };
        for base in bases {
            for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().starts_with("vm-") {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
    }

    /// How VMs are limited here, for the log and `/health`.
    pub fn describe(&self) -> String {
        match self {
            Self::V2 { base } => format!("cgroup v2 under {}", base.display()),
            Self::V1 { cpu, .. } => format!("cgroup v1 under {}", cpu.display()),
            Self::Off(why) => format!("none ({why})"),
        }
    }

    /// The VM's groups, made with `limits`; the `cgroup.procs` files its QEMU writes itself
    /// into (none when off).
    pub fn prepare(&self, uid: &str, limits: Limits) -> std::io::Result<Vec<PathBuf>> {
        let name = format!("vm-{uid}");
        let quota = u64::from(limits.vcpus.max(1)) * PERIOD_US;
        match self {
            Self::Off(_) => Ok(Vec::new()),
            Self::V2 { base } => {
                let group = base.join(&name);
                std::fs::create_dir_all(&group)?;
                write(&group.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?;
                write(&group.join("memory.max"), &limits.memory_bytes.to_string())?;
                Ok(vec![group.join("cgroup.procs")])
            }
            Self::V1 { cpu, memory } => {
                let (cpu, memory) = (cpu.join(&name), memory.join(&name));
                std::fs::create_dir_all(&cpu)?;
                std::fs::create_dir_all(&memory)?;
                write(&cpu.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                write(&cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
                write(&memory.join("memory.limit_in_bytes"), &limits.memory_bytes.to_string())?;
                Ok(vec![cpu.join("cgroup.procs"), memory.join("cgroup.procs")])
            }
        }
    }

    /// Removes the VM's groups (once its QEMU is gone; a group with a process stays).
    pub fn remove(&self, uid: &str) {
        let name = format!("vm-{uid}");
        let groups = match self {
            Self::Off(_) => Vec::new(),
            Self::V2 { base } => vec![base.join(&name)],
            Self::V1 { cpu, memory } => vec![cpu.join(&name), memory.join(&name)],
        };
        for group in groups {
            let _ = std::fs::remove_dir(group);
        }
    }
}

/// `cgroup.procs` paths as C strings, made before the fork: the child only opens and writes.
pub fn entries(procs: &[PathBuf]) -> Vec<CString> {
    procs.iter().filter_map(|p| CString::new(p.as_os_str().as_encoded_bytes()).ok()).collect()
}

/// In the child between fork and exec: writes the child into each group (`0` is "me").
/// Only async-signal-safe calls.
pub fn enter(entries: &[CString]) -> std::io::Result<()> {
    for path in entries {
        // SAFETY: open/write/close on a path made before the fork; no allocation here.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
