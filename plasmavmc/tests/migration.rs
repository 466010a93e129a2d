//! Live migration between two nodes (real QEMU, the root disk on a LightningStor volume): a
//! guest counting on its console keeps counting on the other node — no reboot, no gap in the
//! count — with QEMU's downtime recorded in the VM's status; one QEMU runs afterwards; and back
//! after data volumes were hot attached and one detached (the bus keeps its layout). A VM
//! whose disk is local to its node is refused, saying why, and keeps running.

mod common;

use std::time::{Duration, Instant};

use common::{qemu_processes, Stack};

/// The last `guest: count N` in `console`.
fn last_count(console: &str) -> Option<u64> {
    console.lines().rev().find_map(|l| l.trim().strip_prefix("guest: count ")?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_counting_guest_keeps_counting_on_the_other_node() {
    let stack = Stack::start_with_storage(2).await;
    stack.flavor_and_image("one", 1, 256);
    stack.volumes(201, "POST", "/volumes", Some(r#"{"name":"root","spec":{"size_bytes":67108864,"replicas":1}}"#));
    let vm = stack.expect(
        201,
        "POST",
        "/vms",
        Some(r#"{"name":"mover","spec":{"flavor":"one","image":"guest","root_volume":"root"}}"#),
    );
    let uid = vm["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let running = stack.wait_state("mover", "running", Duration::from_secs(90));
    let source: usize = running["status"]["node"].as_str().unwrap_or_default().trim_start_matches("node-").parse().unwrap_or(0);
    let target = 1 - source;
    stack.wait_console(source, &uid, "guest: count 3", 1, Duration::from_secs(90));

    // A local-disk VM cannot move live: refused with the reason, still running where it was.
    stack.expect(201, "POST", "/vms", Some(r#"{"name":"local","spec":{"flavor":"one","image":"guest"}}"#));
    stack.wait_state("local", "running", Duration::from_secs(90));
    stack.expect(202, "POST", "/vms/local/migrate", None);
    stack.wait_for("the local-disk VM's migration is refused", Duration::from_secs(20), |s| {
        s.vm("local")["status"]["last_migration"]["reason"].as_str().is_some_and(|r| r.contains("root_volume"))
    });
    assert_eq!(stack.vm("local")["status"]["state"], "running");
    stack.expect(204, "DELETE", "/vms/local", None);

    // The move, to the node named.
    let before = last_count(&stack.console(source, &uid)).unwrap_or(0);
    let asked = Instant::now();
    stack.expect(202, "POST", &format!("/vms/mover/migrate?node=node-{target}"), None);
    let moved = stack.wait_state_on("mover", &format!("node-{target}"), "running", Duration::from_secs(120));
    let took = asked.elapsed();
    let record = &moved["status"]["last_migration"];
    assert_eq!(record["succeeded"], true, "{moved}");
    assert_eq!(record["from"], format!("node-{source}"), "{moved}");
    let downtime = record["downtime_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(downtime < 5_000, "QEMU's downtime {downtime} ms: {moved}");
    println!("migration: {took:?} from the request to running on the target; downtime {downtime} ms");

    // The guest carries on counting on the target from where it was: not booted again.
    let after = before + 3;
    stack.wait_for("the guest counts on the target", Duration::from_secs(30), |s| {
        last_count(&s.console(target, &uid)).is_some_and(|n| n >= after)
    });
    let console = stack.console(target, &uid);
    assert!(!console.contains("PLASMAVMC-GUEST-READY"), "the guest did not boot again on the target:\n{console}");
    let first = console.lines().find_map(|l| l.trim().strip_prefix("guest: count ")?.trim().parse::<u64>().ok());
    assert!(first.is_some_and(|n| n > before), "the count went on from {before}:\n{console}");
    stack.wait_for("the source's QEMU is gone", Duration::from_secs(20), |_| qemu_processes(&uid).len() == 1);
    let dir = stack.run_dir(source, &uid);
    stack.wait_for("the source's run directory is removed", Duration::from_secs(20), |_| !dir.exists());

    // Two data volumes attached on the target and the first detached again: the second keeps
    // its PCI slot, so the QEMU the way back starts (from the VM's status) has the same bus.
    for name in ["d1", "d2"] {
        let body = format!(r#"{{"name":"{name}","spec":{{"size_bytes":16777216,"replicas":1}}}}"#);
        stack.volumes(201, "POST", "/volumes", Some(&body));
    }
    for (volumes, disks) in [(serde_json::json!(["d1", "d2"]), "vda vdb vdc vdd"), (serde_json::json!(["d2"]), "vda vdb vdd")] {
        let current = stack.vm("mover");
        let mut spec = current["spec"].clone();
        spec["volumes"] = volumes;
        let update = serde_json::json!({"spec": spec, "resource_version": current["metadata"]["resource_version"]});
        stack.expect(200, "PUT", "/vms/mover", Some(&update.to_string()));
        stack.wait_console(target, &uid, &format!("guest: disks now {disks}"), 1, Duration::from_secs(60));
    }
    stack.wait_for("the status lists d2 alone, in its slot", Duration::from_secs(30), |s| {
        let volumes = s.vm("mover")["status"]["volumes"].clone();
        volumes.as_array().map(Vec::len) == Some(1) && volumes[0]["volume"] == "d2" && volumes[0]["slot"] == 1
    });

    // And back, the scheduler choosing (the only other node): a QEMU that arrived by a
    // migration leaves by one.
    let before = last_count(&stack.console(target, &uid)).unwrap_or(0);
    stack.expect(202, "POST", "/vms/mover/migrate", None);
    let back = stack.wait_state_on("mover", &format!("node-{source}"), "running", Duration::from_secs(120));
    assert_eq!(back["status"]["last_migration"]["succeeded"], true, "{back}");
    assert_eq!(back["status"]["migrations"], 2, "{back}");
    stack.wait_for("the guest counts on after its second move", Duration::from_secs(30), |s| {
        last_count(&s.console(source, &uid)).is_some_and(|n| n >= before + 2)
    });
    assert!(!stack.console(source, &uid).contains("PLASMAVMC-GUEST-READY"), "no boot on the way back either");
    stack.wait_for("one QEMU again", Duration::from_secs(20), |_| qemu_processes(&uid).len() == 1);
}
