//! One VM's QEMU: its command line (sandboxed, no display, QMP and the serial console on unix
//! sockets in the VM's run directory, the console also logged to `console.log`), started as a
//! process of its own session so it outlives the agent (a restart or kill -9 of the agent never
//! reaches the guest), and found again from its pid file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::error::{PlasmavmcError, Result};
use crate::storage::Export;

pub const QMP: &str = "qmp.sock";
pub const CONSOLE: &str = "console.sock";
pub const CONSOLE_LOG: &str = "console.log";
pub const PID: &str = "qemu.pid";
/// What QEMU printed before it was up (its errors).
pub const QEMU_LOG: &str = "qemu.log";

/// How the guest's CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

/// The guest's first disk.
#[derive(Debug, Clone)]
pub enum Root {
    /// A local qcow2 file (an overlay of the image's disk, or blank).
    File(PathBuf),
    /// A LightningStor volume over NBD.
    Volume(Export),
}

/// QEMU's block node and device ids of a data volume: short (node names are at most 31
/// bytes) and the same for the volume at every start and in every agent.
pub fn volume_ids(volume: &str) -> (String, String) {
    let digest = ring::digest::digest(&ring::digest::SHA256, volume.as_bytes());
    let short: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    (format!("vol-{short}"), format!("disk-{short}"))
}

/// The `-blockdev` (and `blockdev-add`) arguments of an NBD export over TLS.
pub fn nbd_blockdev(node: &str, export: &Export) -> serde_json::Value {
    serde_json::json!({
        "driver": "nbd",
        "node-name": node,
        "server": {"type": "inet", "host": export.host, "port": export.port.to_string()},
        "export": export.name,
        "tls-creds": TLS_CREDS,
        "discard": "unmap",
    })
}

/// The root disk's, the seed's, and data volume slot 0's PCI slots (then 0x05, ...; 16
/// volumes end below the NICs').
const ROOT_PCI: u8 = 0x02;
const SEED_PCI: u8 = 0x03;
const VOLUME_PCI_BASE: u8 = 0x04;

/// The `-device` (and `device_add`) arguments of data volume `volume` in `slot`.
pub fn volume_device(volume: &str, slot: u8) -> serde_json::Value {
    let (node, device) = volume_ids(volume);
    serde_json::json!({
        "driver": "virtio-blk-pci",
        "id": device,
        "drive": node,
        "serial": serial(volume),
        "addr": format!("{:#04x}", VOLUME_PCI_BASE + slot),
    })
}

/// NIC `slot`'s PCI slot: fixed (0x18 up, above what the disks take in order), so the
/// guest's bus is the same at every start, after any hot attach and on a migration's target.
const NIC_PCI_BASE: u8 = 0x18;

/// QEMU's netdev and device ids of NIC `slot`.
pub fn nic_ids(slot: u8) -> (String, String) {
    (format!("net{slot}"), format!("nic{slot}"))
}

/// The `-device` (and `device_add`) arguments of NIC `slot`.
pub fn nic_device(slot: u8, mac: &str) -> serde_json::Value {
    let (netdev, device) = nic_ids(slot);
    serde_json::json!({
        "driver": "virtio-net-pci",
        "id": device,
        "netdev": netdev,
        "mac": mac,
        "addr": format!("{:#04x}", NIC_PCI_BASE + slot),
    })
}

/// A NIC as QEMU starts with it: an open tap descriptor (inherited by QEMU), the port's MAC
/// and the NIC's slot.
#[derive(Debug, Clone)]
pub struct NicDevice {
    pub fd: i32,
    pub mac: String,
    pub slot: u8,
}

/// The TLS credentials object NBD exports are opened with (the platform CA in `tls/`).
pub const TLS_CREDS: &str = "nbd-tls";
pub const TLS_DIR: &str = "tls";
/// The directory of live migrations' TLS files.
pub const MIGRATION_TLS: &str = "mig-tls";
/// The credentials objects a live migration's target serves and its source checks with (one
/// QEMU may be both, one after the other).
pub const MIGRATION_TLS_IN: &str = "mig-tls-in";
pub const MIGRATION_TLS_OUT: &str = "mig-tls-out";

/// QEMU's seccomp filter as VMs run under it (`-sandbox`).
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// Whether `binary` has the seccomp sandbox (a QEMU built without libseccomp has no `-sandbox`
/// option at all, and refuses to start with one); why not, if not.
pub fn sandbox_support(binary: &str) -> std::result::Result<(), String> {
    // `-version` exits once the options before it are parsed.
    let out = std::process::Command::new(binary)
        .args(["-sandbox", SANDBOX, "-version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {binary}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
}

/// Everything QEMU is started with.
#[derive(Debug, Clone)]
pub struct Machine {
    pub dir: PathBuf,
    /// `<org>.<project>.<vm>`: what `ps` shows.
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub accel: Accel,
    pub root: Root,
    /// Data volumes in order: (name, export, slot).
    pub volumes: Vec<(String, Export, u8)>,
    /// The TLS credentials for NBD (the platform CA in `<dir>/tls/`) are loaded, so volumes
    /// can be attached, also later.
    pub tls: bool,
    /// The cloud-init seed's directory, shown as a read-only FAT drive labelled `cidata`.
    pub seed: PathBuf,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
    /// NICs in order.
    pub nics: Vec<NicDevice>,
    /// Waits for a live migration's stream (`migrate-incoming`) instead of booting, with the
    /// node's certificate in `<dir>/mig-tls/` to serve it over TLS.
    pub incoming: bool,
    /// The `cgroup.procs` files QEMU enters before it starts (its VM's limits).
    pub cgroups: Vec<PathBuf>,
    /// Whom QEMU runs as (`None`: as the agent).
    pub identity: Option<super::users::Identity>,
    /// QEMU's seccomp sandbox (off only where this QEMU has none: `sandbox_support`).
    pub sandbox: bool,
}

impl Machine {
    pub fn args(&self) -> Vec<String> {
        let dir = self.dir.display();
        let (accel, cpu) = match self.accel {
            Accel::Kvm => ("kvm", "host"),
            Accel::Tcg => ("tcg", "max"),
        };
        let mut args: Vec<String> = vec![
            "-name".into(),
            format!("guest={},debug-threads=on", self.name),
            "-machine".into(),
            format!("pc,accel={accel}"),
            "-cpu".into(),
            cpu.into(),
            "-smp".into(),
            self.vcpus.to_string(),
            "-m".into(),
            self.memory_mib.to_string(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            "-vga".into(),
            "none".into(),
            "-qmp".into(),
            format!("unix:{dir}/{QMP},server=on,wait=off"),
            "-chardev".into(),
            format!(
                "socket,id=console,path={dir}/{CONSOLE},server=on,wait=off,logfile={dir}/{CONSOLE_LOG},logappend=on"
            ),
            "-serial".into(),
            "chardev:console".into(),
        ];
        if self.sandbox {
            // Seccomp: no new processes, no privilege changes, no obsolete system calls.
            args.extend(["-sandbox".into(), SANDBOX.into()]);
        }
        if self.tls {
            args.extend([
                "-object".into(),
                format!("tls-creds-x509,id={TLS_CREDS},endpoint=client,dir={dir}/{TLS_DIR},verify-peer=on"),
            ]);
        }
        if self.incoming {
            args.extend([
                "-object".into(),
                format!("tls-creds-x509,id={MIGRATION_TLS_IN},endpoint=server,dir={dir}/{MIGRATION_TLS},verify-peer=on"),
                "-incoming".into(),
                "defer".into(),
            ]);
        }
        // The root disk first: the guest's vda.
        let root = match &self.root {
            Root::File(disk) => {
                format!("driver=qcow2,node-name=root,file.driver=file,file.filename={},discard=unmap", disk.display())
            }
            Root::Volume(export) => nbd_blockdev("root", export).to_string(),
        };
        args.extend(["-blockdev".into(), root, "-device".into(), format!("virtio-blk-pci,drive=root,addr={ROOT_PCI:#04x}")]);
        args.extend([
            // The cloud-init seed next (vdb), then data volumes.
            "-blockdev".into(),
            format!("driver=vvfat,node-name=cidata,dir={},label=cidata,read-only=on", self.seed.display()),
            "-device".into(),
            format!("virtio-blk-pci,drive=cidata,addr={SEED_PCI:#04x}"),
            "-pidfile".into(),
            format!("{dir}/{PID}"),
        ]);
        for (volume, export, slot) in &self.volumes {
            let (node, _) = volume_ids(volume);
            args.extend([
                "-blockdev".into(),
                nbd_blockdev(&node, export).to_string(),
                "-device".into(),
                volume_device(volume, *slot).to_string(),
            ]);
        }
        for nic in &self.nics {
            let (netdev, _) = nic_ids(nic.slot);
            args.extend([
                "-netdev".into(),
                format!("tap,id={netdev},fd={}", nic.fd),
                "-device".into(),
                nic_device(nic.slot, &nic.mac).to_string(),
            ]);
        }
        if let Some(kernel) = &self.kernel {
            args.extend(["-kernel".into(), kernel.display().to_string()]);
            if let Some(initrd) = &self.initrd {
                args.extend(["-initrd".into(), initrd.display().to_string()]);
            }
            let cmdline = self.cmdline.clone().unwrap_or_else(|| "console=ttyS0".into());
            args.extend(["-append".into(), cmdline]);
        }
        args
    }

    /// Starts QEMU; the caller watches for its QMP socket to answer (`answers`) or for it to
    /// exit (what it said is in `qemu.log`, `said`), without waiting here: a node starting many
    /// VMs at once starts them side by side.
    pub fn spawn(&self, binary: &str) -> Result<tokio::process::Child> {
        for stale in [QMP, CONSOLE, PID] {
            let _ = std::fs::remove_file(self.dir.join(stale));
        }
        let log = std::fs::File::create(self.dir.join(QEMU_LOG)).map_err(|e| PlasmavmcError::io("qemu.log", e))?;
        let err = log.try_clone().map_err(|e| PlasmavmcError::io("qemu.log", e))?;
        let mut command = tokio::process::Command::new(binary);
        command.args(self.args()).stdin(Stdio::null()).stdout(log).stderr(err);
        // A session of its own: no signal meant for the agent (a terminal's, a kill of its
        // group) reaches the VM. Its exit is reaped by tokio once the handle is dropped.
        // The taps' descriptors stay open across exec in QEMU alone (the agent's own copies
        // keep close-on-exec, so no other child inherits them).
        let taps: Vec<i32> = self.nics.iter().map(|nic| nic.fd).collect();
        let groups = super::cgroups::entries(&self.cgroups);
        let identity = self.identity;
        // Made before the fork: nothing may allocate between fork and exec.
        let supplementary: Vec<libc::gid_t> = identity.and_then(|id| id.kvm_gid).into_iter().collect();
        // SAFETY: setsid, fcntl, open, write, setgroups, setgid and setuid are
        // async-signal-safe and touch nothing of the parent.
        unsafe {
            command.pre_exec(move || {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for &fd in &taps {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                super::cgroups::enter(&groups)?;
                // Root no more, for good: the supplementary groups first (/dev/kvm's alone),
                // then the group, then the user (after which none of this could be done).
                if let Some(id) = identity {
                    if libc::setgroups(supplementary.len(), supplementary.as_ptr()) < 0
                        || libc::setgid(id.gid) < 0
                        || libc::setuid(id.uid) < 0
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        command.spawn().map_err(|e| PlasmavmcError::qemu(format!("starting {binary}"), e.to_string()))
    }
}

/// A volume's name as the guest's disk serial (`/dev/disk/by-id/virtio-<serial>`): virtio-blk
/// keeps 20 bytes.
pub fn serial(volume: &str) -> String {
    volume.chars().take(20).collect()
}

/// Whether the VM's QEMU in `dir` listens on its QMP socket yet. Only a connect, not QMP's
/// handshake: a starting QEMU is looked at often, and the agent's queue must not wait on a
/// QEMU that is slow to answer (many guests booting at once); the handshake comes once, after.
pub async fn answers(dir: &Path) -> bool {
    tokio::net::UnixStream::connect(dir.join(QMP)).await.is_ok()
}

/// What QEMU printed at start (its error, when it exited).
pub fn said(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(QEMU_LOG)).unwrap_or_default().trim().to_string()
}

/// The pid of the VM's QEMU in `dir` if it still runs.
pub fn running(dir: &Path) -> Option<u32> {
    let pid: i32 = std::fs::read_to_string(dir.join(PID)).ok()?.trim().parse().ok()?;
    // The pid file outlives QEMU: the process must be alive and still be this VM's QEMU.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = String::from_utf8_lossy(&cmdline).contains(&format!("{}/{PID}", dir.display()));
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?.split_whitespace().nth(2) == Some("Z");
    (ours && !zombie).then_some(pid as u32)
}

/// Ends the VM's QEMU at once (SIGKILL) and waits until it is gone.
pub async fn kill(dir: &Path) {
    if let Some(pid) = running(dir) {
        // SAFETY: a plain signal to a process we checked is this VM's QEMU.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        for _ in 0..200 {
            if running(dir).is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_qemu_without_seccomp_is_told_apart_and_says_why() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qemu-without-seccomp");
        let script = "#!/bin/sh\necho \"qemu: -sandbox on: There is no option group 'sandbox'\" >&2\nexit 1\n";
        std::fs::write(&fake, script).unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let why = sandbox_support(&fake.display().to_string()).unwrap_err();
        assert!(why.contains("no option group 'sandbox'"), "{why}");
        let missing = sandbox_support("/nonexistent/qemu-system-x86_64").unwrap_err();
        assert!(missing.contains("cannot run"), "{missing}");
    }
}
