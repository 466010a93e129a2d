//! The cloud-init NoCloud seed every VM gets: `meta-data` (instance id, host name, ssh keys,
//! the VM's metadata), `user-data` (the spec's, or an empty cloud-config) and `network-config`
//! (version 2: DHCP on every Ethernet interface), written to the VM's run directory and shown
//! to the guest by QEMU as a read-only FAT drive labelled `cidata` — where cloud-init's NoCloud
//! datasource looks. Written again at every start, so changed keys or data reach the guest's
//! next boot (the instance id stays the VM's uid).

use std::path::{Path, PathBuf};

use photon_resource::Resource;
use serde_json::json;

use crate::error::{PlasmavmcError, Result};
use crate::model::vm::VmSpec;

pub const DIR: &str = "seed";

/// cloud-init reads YAML; JSON is YAML.
fn meta_data(vm: &Resource<VmSpec>) -> String {
    let doc = json!({
        "instance-id": vm.metadata.uid,
        "local-hostname": vm.metadata.name,
        "public-keys": vm.spec.ssh_keys,
        "metadata": vm.spec.metadata,
    });
    format!("{doc:#}\n")
}

fn network_config() -> String {
    let doc = json!({
        "version": 2,
        "ethernets": { "all": { "match": { "name": "e*" }, "dhcp4": true } },
    });
    format!("{doc:#}\n")
}

/// Writes the seed of `vm` under `run_dir`; its directory.
pub fn write(run_dir: &Path, vm: &Resource<VmSpec>) -> Result<PathBuf> {
    let dir = run_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| PlasmavmcError::io(format!("creating {}", dir.display()), e))?;
    let user_data = vm.spec.user_data.clone().unwrap_or_else(|| "#cloud-config\n{}\n".to_string());
    for (name, text) in [("meta-data", meta_data(vm)), ("user-data", user_data), ("network-config", network_config())] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| PlasmavmcError::io(format!("writing {}", path.display()), e))?;
    }
    Ok(dir)
}
