//! KVM or software emulation. `/dev/kvm` can exist and still not run guests: on some hosts a
//! KVM guest runs its first instructions but its timer interrupts arrive seconds late, and a
//! Linux kernel never gets past its first messages. So `auto` boots a probe guest under
//! `-accel kvm`: a boot sector that counts 18 timer ticks (one second of the BIOS's clock) and
//! then writes to QEMU's isa-debug-exit port. QEMU exiting with that code within the deadline
//! means KVM runs guests here; anything else means TCG, and each VM's status says why.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::qemu::Accel;

/// How long the probe guest has to exit (about 1.2 s where KVM works, 0.3 s of it QEMU's start).
const DEADLINE: Duration = Duration::from_secs(3);

/// The probe's boot sector (real mode, at 0x7C00): point IRQ 0's vector (8) at the handler,
/// enable interrupts and halt; the handler counts ticks in its last byte, acknowledges the PIC,
/// and at 18 writes 1 to port 0xF4 (QEMU exits with status 3).
const BOOT_SECTOR: &[u8] = &[
    0xFA, 0x31, 0xC0, 0x8E, 0xD8, // cli; xor ax, ax; mov ds, ax
    0xC7, 0x06, 0x20, 0x00, 0x15, 0x7C, // mov word [0x20], handler (0x7C15)
    0xC7, 0x06, 0x22, 0x00, 0x00, 0x00, // mov word [0x22], 0
    0xFB, 0xF4, 0xEB, 0xFD, // sti; hlt; jmp hlt
    0x50, // handler: push ax
    0x2E, 0xFE, 0x06, 0x2D, 0x7C, // inc byte [cs:count]
    0x2E, 0x80, 0x3E, 0x2D, 0x7C, 18, // cmp byte [cs:count], 18
    0x72, 0x04, // jb eoi
    0xB0, 0x01, 0xE6, 0xF4, // mov al, 1; out 0xF4, al
    0xB0, 0x20, 0xE6, 0x20, // eoi: mov al, 0x20; out 0x20, al
    0x58, 0xCF, // pop ax; iret
    0x00, // count (0x7C2D)
];

/// The accelerator `setting` (`auto`, `kvm`, `tcg`) comes to on this node, and why.
pub async fn detect(setting: &str, qemu: &str, scratch: &Path) -> (Accel, String) {
    match setting {
        "kvm" => (Accel::Kvm, "kvm (agent.accel = kvm)".into()),
        "tcg" => (Accel::Tcg, "tcg: software emulation (agent.accel = tcg)".into()),
        _ => match probe(qemu, scratch).await {
            Ok(()) => (Accel::Kvm, "kvm".into()),
            Err(why) => (Accel::Tcg, format!("tcg: software emulation ({why})")),
        },
    }
}

async fn probe(qemu: &str, scratch: &Path) -> Result<(), String> {
    if !Path::new("/dev/kvm").exists() {
        return Err("no /dev/kvm".into());
    }
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let disk = scratch.join("kvm-probe.img");
    let mut image = vec![0u8; 512];
    image[..BOOT_SECTOR.len()].copy_from_slice(BOOT_SECTOR);
    image[510..].copy_from_slice(&[0x55, 0xAA]);
    std::fs::write(&disk, &image).map_err(|e| format!("{}: {e}", disk.display()))?;
    let mut child = tokio::process::Command::new(qemu)
        .args(["-machine", "pc,accel=kvm", "-nodefaults", "-no-user-config", "-display", "none", "-m", "16"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-drive"])
        .arg(format!("file={},format=raw,if=ide", disk.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{qemu}: {e}"))?;
    let waited = tokio::time::timeout(DEADLINE, child.wait()).await;
    let _ = std::fs::remove_file(&disk);
    match waited {
        // isa-debug-exit: QEMU exits with (value << 1) | 1.
        Ok(Ok(status)) if status.code() == Some(3) => Ok(()),
        Ok(Ok(status)) => {
            let mut said = String::new();
            if let Some(mut err) = child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = err.read_to_string(&mut said).await;
            }
            let said = said.lines().next().unwrap_or_default().to_string();
            Err(format!("QEMU with -accel kvm exited with {status}: {said}"))
        }
        Ok(Err(e)) => Err(format!("waiting for QEMU: {e}")),
        Err(_) => Err(format!("a KVM guest's timer did not tick 18 times within {} s", DEADLINE.as_secs())),
    }
}
