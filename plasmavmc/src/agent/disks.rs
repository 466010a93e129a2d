//! A VM's root disk: a qcow2 file in its run directory, made once with qemu-img — an overlay
//! on the image's disk (which stays shared and untouched in the cache) or blank — at the
//! flavour's size, and kept across stops and starts until the VM is deleted. A flavour with a
//! larger disk (a resize while stopped) grows it at the next start; a disk never shrinks (the
//! guest's file system would lose its end).

use std::path::Path;

use crate::error::{PlasmavmcError, Result};
use crate::model::image::DiskFormat;

pub const ROOT: &str = "root.qcow2";

async fn run(qemu_img: &str, args: &[&std::ffi::OsStr], what: &str) -> Result<Vec<u8>> {
    let output = tokio::process::Command::new(qemu_img)
        .args(args)
        .output()
        .await
        .map_err(|e| PlasmavmcError::qemu(format!("running {qemu_img}"), e.to_string()))?;
    if !output.status.success() {
        return Err(PlasmavmcError::qemu(what, String::from_utf8_lossy(&output.stderr).trim().to_string()));
    }
    Ok(output.stdout)
}

/// Grows the disk at `path` to `size_gib` if it is smaller.
async fn grow(qemu_img: &str, path: &Path, size_gib: u64) -> Result<()> {
    let info = run(qemu_img, &["info".as_ref(), "--output=json".as_ref(), path.as_os_str()], "reading the VM's disk").await?;
    let info: serde_json::Value = serde_json::from_slice(&info).unwrap_or_default();
    let current = info["virtual-size"].as_u64().unwrap_or(0);
    let wanted = size_gib * 1024 * 1024 * 1024;
    if current >= wanted {
        return Ok(());
    }
    let size = format!("{size_gib}G");
    run(qemu_img, &["resize".as_ref(), "-q".as_ref(), path.as_os_str(), size.as_ref()], "growing the VM's disk").await?;
    tracing::info!(disk = %path.display(), from_bytes = current, to_gib = size_gib, "grew the VM's disk (a larger flavour)");
    Ok(())
}

/// Makes the disk at `path` unless it exists, or grows it to the flavour's size.
pub async fn ensure(qemu_img: &str, path: &Path, base: Option<(&Path, DiskFormat)>, size_gib: u64) -> Result<()> {
    if path.exists() {
        return grow(qemu_img, path, size_gib).await;
    }
    let partial = path.with_extension("partial");
    let mut command = tokio::process::Command::new(qemu_img);
    command.args(["create", "-q", "-f", "qcow2"]);
    if let Some((base, format)) = base {
        command.arg("-b").arg(base).args(["-F", format.as_str()]);
    }
    command.arg(&partial).arg(format!("{size_gib}G"));
    let output =
        command.output().await.map_err(|e| PlasmavmcError::qemu(format!("running {qemu_img}"), e.to_string()))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let _ = std::fs::remove_file(&partial);
        // An image's disk larger than the flavour's says so here.
        return Err(PlasmavmcError::qemu("making the VM's disk", said));
    }
    std::fs::rename(&partial, path).map_err(|e| PlasmavmcError::io(format!("keeping {}", path.display()), e))
}
