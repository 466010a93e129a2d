//! VMs' disks on LightningStor volumes (a real lightningstor-server, its NBD over TLS): a root
//! disk on a volume keeps what the guest wrote across stop, start and a move to another node;
//! a data volume attached to the running guest appears in it and goes again when detached;
//! deleting the VM deletes its attachments, so the volumes can be deleted.

mod common;

use std::time::Duration;

use common::{qemu_processes, Stack};

const MIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn a_root_volume_keeps_its_data_across_restarts_and_nodes_and_data_volumes_attach_live() {
    let mut stack = Stack::start_with_storage(2).await;
    stack.flavor_and_image("one", 1, 256);
    for (name, size) in [("root", 64 * MIB), ("data", 16 * MIB)] {
        let body = format!(r#"{{"name":"{name}","spec":{{"size_bytes":{size},"replicas":1}}}}"#);
        stack.volumes(201, "POST", "/volumes", Some(&body));
    }
    // Bad input: a volume that does not exist is refused naming the field; nothing is made.
    let missing = r#"{"name":"x","spec":{"flavor":"one","image":"guest","volumes":["nowhere"]}}"#;
    let message = stack.refused("POST", "/vms", missing, "spec.volumes[0]");
    assert!(message.contains("nowhere"), "{message}");
    stack.expect(404, "GET", "/vms/x", None);

    let vm = stack.expect(
        201,
        "POST",
        "/vms",
        Some(r#"{"name":"disk","spec":{"flavor":"one","image":"guest","root_volume":"root","restart_policy":"elsewhere"}}"#),
    );
    let uid = vm["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let first = stack.wait_state("disk", "running", Duration::from_secs(90));
    let node: usize = first["status"]["node"].as_str().unwrap_or_default().trim_start_matches("node-").parse().unwrap_or(0);
    // A fresh volume reads as zeros; the guest writes boots=1 to it.
    stack.wait_console(node, &uid, "guest: disk says []", 1, Duration::from_secs(90));
    stack.wait_console(node, &uid, "PLASMAVMC-GUEST-READY", 1, Duration::from_secs(60));
    assert!(!stack.run_dir(node, &uid).join("root.qcow2").exists(), "no local disk: the root is the volume");

    // Stop and start: what the guest wrote is read back from the volume.
    stack.expect(202, "POST", "/vms/disk/stop", None);
    stack.wait_state("disk", "stopped", Duration::from_secs(30));
    stack.expect(202, "POST", "/vms/disk/start", None);
    stack.wait_state("disk", "running", Duration::from_secs(60));
    stack.wait_console(node, &uid, "guest: disk says [boots=1]", 1, Duration::from_secs(90));
    stack.wait_console(node, &uid, "PLASMAVMC-GUEST-READY", 2, Duration::from_secs(60));

    // Hot attach: the running guest sees a third disk (after its root and the seed).
    let current = stack.vm("disk");
    let mut spec = current["spec"].clone();
    spec["volumes"] = serde_json::json!(["data"]);
    let update = serde_json::json!({"spec": spec, "resource_version": current["metadata"]["resource_version"]});
    stack.expect(200, "PUT", "/vms/disk", Some(&update.to_string()));
    stack.wait_console(node, &uid, "guest: disks now vda vdb vdc", 1, Duration::from_secs(60));
    stack.wait_for("the VM's status lists the data volume", Duration::from_secs(10), |s| {
        s.vm("disk")["status"]["volumes"][0]["volume"] == "data"
    });

    // The node dies (its agent and QEMU): the VM starts on the other one from the same
    // volumes, once the dead node's writer lease is gone.
    stack.nodes[node].process.kill9();
    for pid in qemu_processes(&uid) {
        // SAFETY: a test's own QEMU.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let other = 1 - node;
    stack.wait_state_on("disk", &format!("node-{other}"), "running", Duration::from_secs(120));
    stack.wait_console(other, &uid, "guest: disk says [boots=2]", 1, Duration::from_secs(90));
    stack.wait_console(other, &uid, "guest: disks now vda vdb vdc", 1, Duration::from_secs(60));

    // Hot detach: the disk leaves the running guest, and the attachment goes.
    let current = stack.vm("disk");
    let mut spec = current["spec"].clone();
    spec["volumes"] = serde_json::json!([]);
    let update = serde_json::json!({"spec": spec, "resource_version": current["metadata"]["resource_version"]});
    stack.expect(200, "PUT", "/vms/disk", Some(&update.to_string()));
    stack.wait_console(other, &uid, "guest: disks now vda vdb", 1, Duration::from_secs(60));
    stack.wait_for("the data volume is detached", Duration::from_secs(30), |s| {
        s.vm("disk")["status"]["volumes"].as_array().is_none_or(|v| v.is_empty())
    });
    let attachments = stack.volumes(200, "GET", "/volumes/data/attachments", None);
    assert_eq!(attachments["items"].as_array().map(Vec::len), Some(0), "{attachments}");

    // Deleting the VM deletes its root volume's attachment: the volumes can go.
    stack.expect(204, "DELETE", "/vms/disk", None);
    stack.wait_for("the root volume's attachment is deleted", Duration::from_secs(30), |s| {
        let storage = s.storage.as_ref().expect("storage");
        let (_, list) = storage.project_call(("acme", "web"), "GET", "/volumes/root/attachments", None, &s.tenant);
        list["items"].as_array().is_some_and(|v| v.is_empty())
    });
    stack.wait_for("no QEMU of the VM is left", Duration::from_secs(30), |_| qemu_processes(&uid).is_empty());
    stack.volumes(204, "DELETE", "/volumes/root", None);
    stack.volumes(204, "DELETE", "/volumes/data", None);
}
