//! A VM's life on one node with real QEMU: create → the guest's ready line on its serial
//! console, its cloud-init seed (name, ssh key, user data) read by the guest → stop (ACPI) → start, the disk keeping what the guest wrote → reboot → the agent
//! killed -9 and restarted under the running guest, which never notices → delete, leaving
//! nothing behind on the node.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::{qemu_processes, Stack};

const BOOT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread")]
async fn a_vm_boots_stops_starts_survives_its_agent_and_is_deleted_without_a_trace() {
    let stack = Stack::start(1).await;
    stack.flavor_and_image("small", 1, 256);
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHhXeUq8y7Yxg0nTwbJo2aS1H7H1nXvGm2Yk0v0aKk2w tester@example";
    let body = serde_json::json!({"name": "web1", "spec": {"flavor": "small", "image": "guest", "ssh_keys": [key],
        "user_data": "#!/bin/sh\necho hello from user data\n"}});
    let created = stack.expect(201, "POST", "/vms", Some(&body.to_string()));
    let uid = created["metadata"]["uid"].as_str().unwrap_or_default().to_string();

    let vm = stack.wait_state("web1", "running", BOOT);
    assert_eq!(vm["status"]["node"], "node-0", "{vm}");
    assert!(
        vm["status"]["accel"].as_str().unwrap_or_default().starts_with("tcg"),
        "the status says how the CPU runs: {vm}"
    );
    stack.wait_console(0, &uid, "PLASMAVMC-GUEST-READY", 1, BOOT);
    let console = stack.console(0, &uid);
    assert!(console.contains("guest: disk says []"), "a new VM's disk is blank:\n{console}");
    // The cloud-init seed: a FAT drive labelled cidata with the VM's name, key and user data.
    assert!(console.contains("label cidata files meta-data network-config user-data"), "{console}");
    let compact_key: String = key.split_whitespace().collect();
    assert!(console.contains(&format!("\"instance-id\":\"{uid}\"")) && console.contains("\"local-hostname\":\"web1\""), "{console}");
    assert!(console.contains(&compact_key), "the ssh key is in the seed's meta-data:\n{console}");
    assert!(console.contains("guest: user-data first line: #!/bin/sh"), "{console}");
    let states: Vec<String> = vm["status"]["transitions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["state"].as_str().map(String::from))
        .collect();
    assert_eq!(states, ["scheduled", "starting", "running"], "every transition is recorded: {vm}");

    // Stop: the power button; the guest (busybox init) ignores it, so the agent ends QEMU after
    // its stop timeout (3 s in these tests).
    stack.expect(202, "POST", "/vms/web1/stop", None);
    stack.wait_state("web1", "stopped", Duration::from_secs(30));
    assert!(qemu_processes(&uid).is_empty(), "no QEMU runs for a stopped VM");

    // Resized while stopped: a larger flavour changes the VM's share of its node, and grows
    // the disk at the next start.
    stack.expect(201, "POST", "/flavors", Some(r#"{"name":"roomier","spec":{"vcpus":1,"memory_mib":384,"disk_gib":2}}"#));
    let current = stack.vm("web1");
    let mut spec = current["spec"].clone();
    spec["flavor"] = serde_json::json!("roomier");
    let update = serde_json::json!({"spec": spec, "resource_version": current["metadata"]["resource_version"]});
    stack.expect(200, "PUT", "/vms/web1", Some(&update.to_string()));
    stack.wait_for("the resized VM's grant", Duration::from_secs(10), |s| s.vm("web1")["status"]["grant"]["memory_mib"] == 384);

    stack.expect(202, "POST", "/vms/web1/start", None);
    stack.wait_state("web1", "running", BOOT);
    stack.wait_console(0, &uid, "PLASMAVMC-GUEST-READY", 2, BOOT);
    // 2 GiB in 512-byte sectors, where the first boot saw 1 GiB.
    assert!(stack.console(0, &uid).contains("guest: disk vda 4194304 sectors"), "{}", stack.console(0, &uid));
    assert!(
        stack.console(0, &uid).contains("guest: disk says [boots=1]"),
        "the disk keeps what the guest wrote:\n{}",
        stack.console(0, &uid)
    );

    // QEMU runs in its VM's cgroup, limited to the flavour: 1 vCPU, 384 MiB + 512 MiB overhead.
    let pid = qemu_processes(&uid);
    let limits = stack.health(0)["agent"]["limits"].as_str().unwrap_or_default().to_string();
    if limits.starts_with("none") {
        eprintln!("this machine gives the agent no cgroups ({limits}): limits not checked");
    } else {
        let groups = std::fs::read_to_string(format!("/proc/{}/cgroup", pid[0])).unwrap_or_default();
        let group = format!("vm-{uid}");
        let memory = groups.lines().find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let file = match controllers {
                "" => format!("/sys/fs/cgroup{path}/memory.max"),
                c if c.split(',').any(|c| c == "memory") => format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"),
                _ => return None,
            };
            path.ends_with(&group).then_some(file)
        });
        let memory = memory.unwrap_or_else(|| panic!("QEMU is not in its VM's memory cgroup ({limits}):\n{groups}"));
        let limit = std::fs::read_to_string(&memory).unwrap_or_default();
        assert_eq!(limit.trim(), (896u64 * 1024 * 1024).to_string(), "{memory}");
    }

    // QEMU is not root: a uid of the VM's own, which owns its run directory (and no one else
    // may enter it).
    let qemu_user = stack.health(0)["agent"]["qemu_user"].as_str().unwrap_or_default().to_string();
    assert!(qemu_user.starts_with("a uid of its own per VM"), "{qemu_user}");
    let sandbox = stack.health(0)["agent"]["sandbox"].as_str().unwrap_or_default().to_string();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid[0])).unwrap_or_default();
    let sandboxed = String::from_utf8_lossy(&cmdline).contains("elevateprivileges=deny");
    assert!(sandbox.starts_with("on") && sandboxed, "QEMU's seccomp sandbox: {sandbox}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid[0])).unwrap_or_default();
    let ids = |field: &str| -> Vec<u32> {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_default();
        line.split_whitespace().skip(1).filter_map(|n| n.parse().ok()).collect()
    };
    let (uids, gids) = (ids("Uid:"), ids("Gid:"));
    assert!(uids.len() == 4 && uids.iter().all(|u| *u == uids[0] && *u > 1_500_000), "QEMU's uids: {status}");
    assert!(gids.len() == 4 && gids.iter().all(|g| *g == 1_500_000), "QEMU's gids: {status}");
    let dir = stack.run_dir(0, &uid);
    let meta = std::fs::metadata(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uids[0], 0o700), "{}", dir.display());
    let seed = std::fs::metadata(dir.join("seed").join("user-data")).map(|m| m.uid()).ok();
    assert_eq!(seed, Some(uids[0]), "what the agent wrote is QEMU's to read");

    // Reboot: one reset, the guest boots again on the same QEMU.
    stack.expect(202, "POST", "/vms/web1/reboot", None);
    stack.wait_console(0, &uid, "PLASMAVMC-GUEST-READY", 3, BOOT);
    assert_eq!(qemu_processes(&uid), pid, "a reboot is a reset, not a new QEMU");
    stack.wait_for("the reboot recorded", Duration::from_secs(10), |s| s.vm("web1")["status"]["reboots"] == 1);

    // The agent killed -9 and started again: the guest keeps counting on the same QEMU.
    let before = stack.console(0, &uid).matches("guest: count").count();
    let mut stack = stack;
    stack.nodes[0].process.kill9();
    stack.nodes[0].process.start();
    stack.nodes[0].wait_healthy(Duration::from_secs(30)).await;
    stack.wait_console(0, &uid, "guest: count", before + 5, Duration::from_secs(60));
    assert_eq!(qemu_processes(&uid), pid, "the agent adopted the running QEMU");
    assert_eq!(stack.console(0, &uid).matches("PLASMAVMC-GUEST-READY").count(), 3, "the guest did not restart");
    let health = stack.health(0);
    assert_eq!(health["agent"]["running"], 1, "{health}");
    assert_eq!(stack.vm("web1")["status"]["state"], "running");

    // Delete: QEMU ended, the run directory (disk, sockets, logs) removed.
    stack.expect(204, "DELETE", "/vms/web1", None);
    let dir = stack.run_dir(0, &uid);
    stack.wait_for("the VM's files removed", Duration::from_secs(20), |_| !dir.exists());
    assert!(qemu_processes(&uid).is_empty(), "no QEMU left");
    let health = stack.health(0);
    assert_eq!(health["agent"]["placed"], 0, "{health}");

    // Deleted the moment it is created (its start may be under way): nothing of it stays.
    let brief = stack.expect(201, "POST", "/vms", Some(r#"{"name":"brief","spec":{"flavor":"small","image":"guest"}}"#));
    let brief_uid = brief["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    std::thread::sleep(Duration::from_millis(30));
    stack.expect(204, "DELETE", "/vms/brief", None);
    let brief_dir = stack.run_dir(0, &brief_uid);
    stack.wait_for("nothing of a VM deleted while starting stays", Duration::from_secs(30), |_| {
        qemu_processes(&brief_uid).is_empty() && !brief_dir.exists()
    });
}
