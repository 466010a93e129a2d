//! The real cloud-init (Debian's package, in a Debian bookworm image made by mmdebstrap:
//! tests/guest/build-debian.sh) reads PlasmaVMC's NoCloud seed: the VM's name becomes the
//! host name, its ssh key the default user's authorized key, and its user data's commands run.
//! The image is built once per machine (about a minute, from Debian's mirror) and boots in
//! about half a minute under software emulation here.

mod common;

use std::time::Duration;

use common::{Guest, Stack};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPhotonCloudTestKeyForCloudInitOnly0000 tester@photoncloud";

#[tokio::test(flavor = "multi_thread")]
async fn debians_cloud_init_applies_the_host_name_the_ssh_key_and_the_user_data() {
    let debian = Guest::serve_debian();
    let stack = Stack::start_with(1, &[("PLASMAVMC_AGENT_MEMORY_MIB", "2048".to_string())]).await;
    stack.expect(201, "POST", "/flavors", Some(r#"{"name":"debian","spec":{"vcpus":2,"memory_mib":1024,"disk_gib":3}}"#));
    let image = serde_json::json!({"name": "debian", "spec": {
        "disk": {"url": debian.url("disk.qcow2"), "sha256": debian.sha256("disk.qcow2")},
        "format": "qcow2",
        "kernel": {"url": debian.url("vmlinuz"), "sha256": debian.sha256("vmlinuz")},
        "initrd": {"url": debian.url("initrd.img"), "sha256": debian.sha256("initrd.img")},
        "cmdline": "root=/dev/vda rw console=ttyS0",
    }});
    stack.expect(201, "POST", "/images", Some(&image.to_string()));
    // The user data's commands report what cloud-init did, on the serial console.
    let user_data = "#cloud-config\nruncmd:\n  - echo \"CLOUDINIT-REPORT host=$(hostname) keys=$(grep -c PhotonCloudTestKey /home/debian/.ssh/authorized_keys)\" > /dev/ttyS0\n";
    let vm = serde_json::json!({"name": "cirrus", "spec": {
        "flavor": "debian", "image": "debian", "ssh_keys": [KEY], "user_data": user_data,
    }});
    let created = stack.expect(201, "POST", "/vms", Some(&vm.to_string()));
    let uid = created["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    stack.wait_state("cirrus", "running", Duration::from_secs(300));
    stack.wait_console(0, &uid, "CLOUDINIT-REPORT", 1, Duration::from_secs(900));
    let console = stack.console(0, &uid);
    let report = console.lines().find(|l| l.contains("CLOUDINIT-REPORT")).unwrap_or_default().to_string();
    println!("{report}");
    assert!(report.contains("host=cirrus"), "the VM's name is the host name: {report}");
    assert!(report.contains("keys=1"), "the ssh key is the default user's: {report}");
    assert!(console.contains("Cloud-init v."), "Debian's cloud-init ran:\n{console}");
}
