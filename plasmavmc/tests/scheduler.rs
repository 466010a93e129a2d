//! Placement across two nodes of 2 CPUs and 1 GiB each: 20 VMs created at once never
//! overcommit a node and the overflow is in error with the reason; a dead node's VMs are
//! handled by their restart policy, and never run on two nodes.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{qemu_processes, Stack};

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_creates_never_overcommit_a_node() {
    let stack = Stack::start(2).await;
    stack.flavor_and_image("one", 1, 256);
    // Created stopped: placed (holding their share) without 20 guests booting on 2 cores.
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let (node, tenant) = (&stack.nodes[i % 2], stack.tenant.clone());
            let body = format!(r#"{{"name":"vm{i}","spec":{{"flavor":"one","image":"guest","power":"stopped"}}}}"#);
            let (url, ca) = (node.url(), node.ca());
            std::thread::spawn(move || {
                let output = std::process::Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
                    .arg(ca)
                    .args([
                        "-X",
                        "POST",
                        "-H",
                        &format!("authorization: Bearer {tenant}"),
                        "-H",
                        "content-type: application/json",
                    ])
                    .args(["-d", &body, &format!("{url}/api/v1/orgs/acme/projects/web/vms")])
                    .output();
                output.map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default()
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap_or_default(), "201");
    }
    stack.wait_for("every VM placed or refused", Duration::from_secs(60), |s| {
        let listed = s.expect(200, "GET", "/vms?limit=100", None);
        listed["items"].as_array().is_some_and(|items| {
            items.iter().all(|vm| matches!(vm["status"]["state"].as_str(), Some("stopped" | "error")))
        })
    });
    let listed = stack.expect(200, "GET", "/vms?limit=100", None);
    let mut per_node: BTreeMap<String, u32> = BTreeMap::new();
    let mut errors = Vec::new();
    for vm in listed["items"].as_array().into_iter().flatten() {
        match vm["status"]["node"].as_str() {
            Some(node) => *per_node.entry(node.to_string()).or_default() += 1,
            None => errors.push(vm["status"]["reason"].as_str().unwrap_or_default().to_string()),
        }
    }
    // Memory allows 4 per node, CPUs (no overcommit) 2.
    assert_eq!(per_node.values().copied().collect::<Vec<_>>(), [2, 2], "{per_node:?}");
    assert_eq!(errors.len(), 16);
    assert!(
        errors
            .iter()
            .all(|e| e.contains("node-0: 0 vCPUs free, needs 1") && e.contains("node-1: 0 vCPUs free, needs 1")),
        "{errors:?}"
    );
    // Deleting a placed VM gives its share back: a new VM fits again.
    let placed = listed["items"].as_array().into_iter().flatten().find(|vm| vm["status"]["node"].is_string()).cloned();
    let name = placed.map(|vm| vm["metadata"]["name"].as_str().unwrap_or_default().to_string()).unwrap_or_default();
    stack.expect(204, "DELETE", &format!("/vms/{name}"), None);
    stack.expect(
        201,
        "POST",
        "/vms",
        Some(r#"{"name":"late","spec":{"flavor":"one","image":"guest","power":"stopped"}}"#),
    );
    stack.wait_state("late", "stopped", Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_nodes_vms_follow_their_policy_and_never_run_twice() {
    let mut stack = Stack::start(2).await;
    stack.flavor_and_image("one", 1, 256);
    // Both on node-1: node-0 is kept full by a stopped VM holding both its CPUs.
    stack.expect(201, "POST", "/flavors", Some(r#"{"name":"two","spec":{"vcpus":2,"memory_mib":256,"disk_gib":1}}"#));
    stack.expect(
        201,
        "POST",
        "/vms",
        Some(r#"{"name":"hog","spec":{"flavor":"two","image":"guest","power":"stopped"}}"#),
    );
    let hog = stack.wait_state("hog", "stopped", Duration::from_secs(30));
    let full = hog["status"]["node"].as_str().unwrap_or_default().to_string();
    let other = if full == "node-0" { 1 } else { 0 };
    let moves = stack.expect(
        201,
        "POST",
        "/vms",
        Some(r#"{"name":"moves","spec":{"flavor":"one","image":"guest","restart_policy":"elsewhere"}}"#),
    );
    stack.expect(
        201,
        "POST",
        "/vms",
        Some(r#"{"name":"stays","spec":{"flavor":"one","image":"guest","power":"stopped"}}"#),
    );
    let running = stack.wait_state("moves", "running", Duration::from_secs(90));
    assert_eq!(running["status"]["node"], format!("node-{other}"));
    let uid = moves["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    stack.wait_console(other, &uid, "PLASMAVMC-GUEST-READY", 1, Duration::from_secs(90));
    // The hog goes, so the survivor has room; then node `other` dies: its agent and its QEMUs.
    stack.expect(204, "DELETE", "/vms/hog", None);
    stack.nodes[other].process.kill9();
    for pid in qemu_processes(&uid) {
        // SAFETY: a test's own QEMU.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    let survivor = 1 - other;
    let moved = stack.wait_state_on("moves", &format!("node-{survivor}"), "running", Duration::from_secs(120));
    assert_eq!(moved["status"]["placements"], 2, "{moved}");
    assert!(moved["status"]["reason"].as_str().unwrap_or_default().is_empty() || moved["status"]["state"] == "running");
    let stays = stack.wait_state("stays", "error", Duration::from_secs(60));
    assert!(stays["status"]["reason"].as_str().unwrap_or_default().contains("died"), "{stays}");
    stack.wait_console(survivor, &uid, "PLASMAVMC-GUEST-READY", 1, Duration::from_secs(90));
    // The dead node comes back: it runs nothing of the moved VM.
    stack.nodes[other].process.start();
    stack.nodes[other].wait_healthy(Duration::from_secs(30)).await;
    let dir = stack.run_dir(other, &uid);
    stack.wait_for("the returning node drops the moved VM", Duration::from_secs(20), |_| !dir.exists());
    assert_eq!(qemu_processes(&uid).len(), 1, "the VM runs once");
}
