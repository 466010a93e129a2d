//! One VM's QEMU: its command line (sandboxed, no display, QMP and the serial console on unix
//! sockets in the VM's run directory, the console also logged to `console.log`), started as a
//! process of its own session so it outlives the agent (a restart or kill -9 of the agent never
//! reaches the guest), and found again from its pid file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::error::{PlasmavmcError, Result};

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

/// Everything QEMU is started with.
#[derive(Debug, Clone)]
pub struct Machine {
    pub dir: PathBuf,
    /// `<org>.<project>.<vm>`: what `ps` shows.
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub accel: Accel,
    pub disk: PathBuf,
    /// The cloud-init seed's directory, shown as a read-only FAT drive labelled `cidata`.
    pub seed: PathBuf,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
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
            // Seccomp: no new processes, no privilege changes, no obsolete system calls.
            "-sandbox".into(),
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny".into(),
            "-qmp".into(),
            format!("unix:{dir}/{QMP},server=on,wait=off"),
            "-chardev".into(),
            format!(
                "socket,id=console,path={dir}/{CONSOLE},server=on,wait=off,logfile={dir}/{CONSOLE_LOG},logappend=on"
            ),
            "-serial".into(),
            "chardev:console".into(),
            // The root disk first: the guest's vda.
            "-blockdev".into(),
            format!("driver=qcow2,node-name=root,file.driver=file,file.filename={},discard=unmap", self.disk.display()),
            "-device".into(),
            "virtio-blk-pci,drive=root".into(),
            "-blockdev".into(),
            format!("driver=vvfat,node-name=cidata,dir={},label=cidata,read-only=on", self.seed.display()),
            "-device".into(),
            "virtio-blk-pci,drive=cidata".into(),
            "-pidfile".into(),
            format!("{dir}/{PID}"),
        ];
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
        // SAFETY: setsid is async-signal-safe and touches nothing of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn().map_err(|e| PlasmavmcError::qemu(format!("starting {binary}"), e.to_string()))
    }
}

/// Whether the VM's QEMU in `dir` answers on its QMP socket.
pub async fn answers(dir: &Path) -> bool {
    let qmp = dir.join(QMP);
    qmp.exists() && super::qmp::Qmp::connect(&qmp).await.is_ok()
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
