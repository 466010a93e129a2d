//! VMs on a VPC: a cluster of test hosts (network namespaces; photon-testkit's harness) with
//! PrismNET on every node and PlasmaVMC's agent on two workers. Two VMs on different nodes get
//! their addresses from PrismNET's DHCP (as their NICs' ports say), one reaches the other
//! across the overlay once a security group lets it, and deleting them leaves no port, tap or
//! QEMU behind.

#[allow(dead_code, clippy::too_many_arguments)]
#[path = "../../prismnet/tests/common/hosts.rs"]
mod hosts;
mod common;

use std::time::{Duration, Instant};

use common::{qemu_processes, Guest};
use hosts::Hosts;
use serde_json::Value;

/// The cluster, and its guests ended with it, passed or failed (they outlive their agent by
/// design).
struct Lab {
    hosts: Hosts,
    guest: Guest,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for node in &self.hosts.cluster.nodes {
            for pid in qemu_processes(&node.data.path().display().to_string()) {
                // SAFETY: a plain signal to a QEMU this test's node started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

impl Lab {
    /// PlasmaVMC's REST API on node 0 under the tenant's project.
    fn vmc(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let url = format!("https://127.0.0.1:9090/api/v1/orgs/acme/projects/web{path}");
        let bearer = format!("authorization: Bearer {}", self.hosts.token);
        let mut args = vec!["-X", method, "-H", &bearer, "-H", "content-type: application/json"];
        if let Some(body) = body {
            args.extend(["--data-binary", body]);
        }
        args.push(&url);
        self.hosts.cluster.curl_with(0, &args)
    }

    fn expect(&self, status: u16, method: &str, path: &str, body: Option<&str>) -> Value {
        let (got, json) = self.vmc(method, path, body);
        assert_eq!(got, status, "{method} {path}: {json}");
        json
    }

    fn logs(&self) -> String {
        let cluster = &self.hosts.cluster;
        let mut text: String =
            (0..cluster.nodes.len()).map(|i| format!("--- node {i} plasmavmc ---\n{}", cluster.log(i, "plasmavmc"))).collect();
        text.push_str(&self.hosts.logs());
        text
    }

    /// Waits until VM `name` runs; its JSON.
    fn running(&self, name: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let vm = self.expect(200, "GET", &format!("/vms/{name}"), None);
            if vm["status"]["state"] == "running" {
                return vm;
            }
            assert!(Instant::now() < deadline, "VM {name} not running: {vm}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The console so far of `vm` (its JSON as the API answered it).
    fn console(&self, vm: &Value) -> String {
        let node = vm["status"]["node"].as_str().unwrap_or_default();
        let uid = vm["metadata"]["uid"].as_str().unwrap_or_default();
        let Some(host) = self.hosts.cluster.nodes.iter().find(|n| n.name == node) else { return String::new() };
        let log = host.data.path().join("plasmavmc").join("vms").join(uid).join("console.log");
        std::fs::read_to_string(log).unwrap_or_default()
    }

    /// Waits until `vm`'s console holds `text`.
    fn wait_console(&self, vm: &Value, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.console(vm).contains(text) {
            assert!(
                Instant::now() < deadline,
                "console of {}: {text:?} not within {within:?}:\n{}\n{}",
                vm["metadata"]["name"],
                self.console(vm),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn vm_body(&self, name: &str, group: &str, user_data: Option<&str>) -> String {
        let mut spec = serde_json::json!({
            "flavor": "small",
            "image": "guest",
            "anti_affinity": "pair",
            "nics": [{"vpc": "blue", "subnet": "front", "security_groups": [group]}],
        });
        if let Some(data) = user_data {
            spec["user_data"] = Value::from(data);
        }
        serde_json::json!({"name": name, "spec": spec}).to_string()
    }
}

#[test]
fn vms_on_two_nodes_share_a_vpc_get_dhcp_addresses_and_obey_security_groups() {
    let mut hosts = Hosts::start(2);
    for i in 0..hosts.cluster.nodes.len() {
        hosts.cluster.add_service(i, "plasmavmc");
        hosts.cluster.start_service(i, "plasmavmc");
    }
    let (ns0, addr0) = (hosts.cluster.lab.ns(0), hosts.cluster.lab.addr(0));
    let guest = Guest::serve_at(Some(&ns0), &addr0);
    let lab = Lab { hosts, guest };
    lab.hosts.cluster.wait_for("both workers registered", Duration::from_secs(30), |c| {
        c.health(0, "plasmavmc").1["nodes"]["schedulable"] == 2
    });

    lab.hosts.network("acme", "blue", "10.0.0.0/16", "front", "10.0.1.0/24");
    lab.hosts.expect("acme", 201, "POST", "/vpcs/blue/securitygroups", Some(r#"{"name":"closed","spec":{}}"#));
    lab.expect(201, "POST", "/flavors", Some(r#"{"name":"small","spec":{"vcpus":1,"memory_mib":256,"disk_gib":1}}"#));
    lab.expect(201, "POST", "/images", Some(&lab.guest.image_body("guest")));

    // Bad input: a subnet that does not exist is refused naming the NIC, and nothing is made.
    let mut wrong: Value = serde_json::from_str(&lab.vm_body("wrong", "mesh", None)).unwrap_or_default();
    wrong["spec"]["nics"][0]["subnet"] = Value::from("nowhere");
    let (status, body) = lab.vmc("POST", "/vms", Some(&wrong.to_string()));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("spec.nics[0].subnet"), "{body}");
    lab.expect(404, "GET", "/vms/wrong", None);

    // B takes nothing in (group `closed`); A is in `mesh` and pings B every second.
    lab.expect(201, "POST", "/vms", Some(&lab.vm_body("b", "closed", None)));
    let b = lab.running("b");
    let b_ip = b["status"]["nics"][0]["ip"].as_str().unwrap_or_default().to_string();
    assert!(b_ip.starts_with("10.0.1."), "B's NIC: {b}");
    assert_eq!(b["status"]["nics"][0]["port"], "blue/front/b-0", "{b}");
    let script = format!(
        "#!/bin/sh\nwhile true; do if ping -c 1 -W 1 {b_ip} >/dev/null 2>&1; then echo \"guest: ping {b_ip} ok\"; else echo \"guest: ping {b_ip} lost\"; fi; sleep 1; done\n"
    );
    lab.expect(201, "POST", "/vms", Some(&lab.vm_body("a", "mesh", Some(&script))));
    let a = lab.running("a");
    let a_ip = a["status"]["nics"][0]["ip"].as_str().unwrap_or_default().to_string();
    assert_ne!(a["status"]["node"], b["status"]["node"], "anti-affinity puts them on two nodes");

    // The port PrismNET holds is the NIC's, bound to the tap on A's node.
    let port = lab.hosts.expect("acme", 200, "GET", "/vpcs/blue/subnets/front/ports/a-0", None);
    assert_eq!(port["spec"]["ip"].as_str(), Some(a_ip.as_str()), "{port}");
    assert_eq!(port["spec"]["binding"]["node"], a["status"]["node"], "{port}");
    assert_eq!(port["spec"]["binding"]["device"], "tap", "{port}");

    // Each guest's address came from DHCP and is its port's.
    lab.wait_console(&b, &format!("guest: dhcp eth0 {b_ip}/24 router 10.0.1.1"), Duration::from_secs(60));
    lab.wait_console(&a, &format!("guest: dhcp eth0 {a_ip}/24 router 10.0.1.1"), Duration::from_secs(60));

    // `closed` blocks A's pings to B...
    lab.wait_console(&a, &format!("guest: ping {b_ip} lost"), Duration::from_secs(30));
    let lost = lab.console(&a).matches(&format!("ping {b_ip} lost")).count();
    std::thread::sleep(Duration::from_secs(3));
    let console = lab.console(&a);
    assert!(console.matches(&format!("ping {b_ip} lost")).count() > lost, "A keeps failing: {console}");
    assert!(!console.contains(&format!("ping {b_ip} ok")), "nothing reached B through `closed`: {console}");
    // ...until it lets `mesh`'s members in: A reaches B across the overlay.
    let rule = r#"{"name":"mesh-icmp","spec":{"direction":"ingress","protocol":"icmp","remote_group":"mesh"}}"#;
    lab.hosts.expect("acme", 201, "POST", "/vpcs/blue/securitygroups/closed/rules", Some(rule));
    lab.wait_console(&a, &format!("guest: ping {b_ip} ok"), Duration::from_secs(30));

    // Deleting the VMs deletes their ports; their QEMUs and taps go.
    lab.expect(204, "DELETE", "/vms/a", None);
    lab.expect(204, "DELETE", "/vms/b", None);
    lab.hosts.cluster.wait_for("the VMs' ports are deleted", Duration::from_secs(30), |_| {
        lab.hosts.api("acme", "GET", "/vpcs/blue/subnets/front/ports/a-0", None).0 == 404
            && lab.hosts.api("acme", "GET", "/vpcs/blue/subnets/front/ports/b-0", None).0 == 404
    });
    lab.hosts.cluster.wait_for("no QEMU is left", Duration::from_secs(30), |c| {
        c.nodes.iter().all(|n| qemu_processes(&n.data.path().display().to_string()).is_empty())
    });
}
