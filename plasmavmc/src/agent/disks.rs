//! A VM's root disk: a qcow2 file in its run directory, made once with qemu-img — an overlay
//! on the image's disk (which stays shared and untouched in the cache) or blank — at the
//! flavour's size, and kept across stops and starts until the VM is deleted.

use std::path::Path;

use crate::error::{PlasmavmcError, Result};
use crate::model::image::DiskFormat;

pub const ROOT: &str = "root.qcow2";

/// Makes the disk at `path` unless it exists.
pub async fn ensure(qemu_img: &str, path: &Path, base: Option<(&Path, DiskFormat)>, size_gib: u64) -> Result<()> {
    if path.exists() {
        return Ok(());
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
