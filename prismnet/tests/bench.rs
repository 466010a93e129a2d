//! `scripts/bench-prismnet`'s measurements (ignored in the test run): on two test hosts with
//! prismnet on each, the time from a port's create to the first ping its machine gets answered
//! across hosts (100 ports); iperf3 throughput between machines on different hosts through
//! the overlay (security groups on; and off, on another VPC), through plain veth routing over the same underlay (no encapsulation), through a
//! VXLAN overlay built by hand with iproute2 and no rules (the ceiling), and through the overlay
//! with 1,000 security-group rules on the receiving port. One JSON line per measure to the file
//! NET_BENCH_OUT names.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::hosts::{run, Hosts};

fn record(line: serde_json::Value) {
    let path = std::env::var("NET_BENCH_OUT").unwrap_or_else(|_| "/dev/stderr".into());
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("the results file");
    writeln!(file, "{line}").expect("write a result");
    eprintln!("{line}");
}

/// iperf3 from `client` to `server_ip` (a server already listening in the server's namespace)
/// for `seconds`: bits per second received.
fn iperf(client: &str, server_ip: &str, seconds: u32) -> f64 {
    let out = run("ip", &["netns", "exec", client, "iperf3", "-J", "-c", server_ip, "-p", "5201", "-t", &seconds.to_string()]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    doc["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0)
}

fn iperf_server(ns: &str) -> std::process::Child {
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "iperf3", "-s", "-p", "5201"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 -s");
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// The best of `rounds` iperf runs (a noisy second on a shared machine falls on one run).
fn best_of(rounds: u32, mut measure: impl FnMut() -> f64) -> f64 {
    (0..rounds).map(|_| measure()).fold(0.0, f64::max)
}

#[test]
#[ignore = "a benchmark: scripts/bench-prismnet"]
fn bench_prismnet() {
    let ports: usize = std::env::var("NET_BENCH_PORTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let seconds: u32 = std::env::var("NET_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let rounds: u32 = std::env::var("NET_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let hosts = Hosts::start(2);
    hosts.network("acme", "blue", "10.0.0.0/16", "front", "10.0.0.0/20");
    let peer = hosts.machine("peer");
    hosts.port("acme", "blue", "front", "peer", Some("10.0.15.250"), 2, &peer);

    // Port create to first answered ping, across hosts (the peer is on node 2, each new port
    // on node 1).
    let machines: Vec<String> = (0..ports).map(|i| hosts.machine(&format!("p{i}"))).collect();
    let (mut took, mut api) = (Vec::new(), Vec::new());
    for (i, machine) in machines.iter().enumerate() {
        let started = Instant::now();
        hosts.port("acme", "blue", "front", &format!("p{i}"), None, 1, machine);
        api.push(started.elapsed().as_secs_f64() * 1000.0);
        let mut attempts = Vec::new();
        loop {
            let attempt = Instant::now();
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", machine, "ping", "-c", "1", "-w", "2", "-i", "0.005", "-q", "10.0.15.250"])
                .output();
            attempts.push((attempt.duration_since(started).as_millis(), attempt.elapsed().as_millis(), out.as_ref().map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string()).unwrap_or_default()));
            if out.map(|o| o.status.success()).unwrap_or(false) {
                if started.elapsed() > Duration::from_millis(500) && std::env::var("NET_BENCH_LOG").is_ok() {
                    eprintln!("SLOW p{i}: attempts {attempts:?}\n{}\n{}", run("ip", &["-n", machine, "neigh"]), run("ip", &["-n", &peer, "neigh"]));
                }
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "port p{i} never answered\n{}", hosts.logs());
            std::thread::sleep(Duration::from_millis(2));
        }
        took.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    record(serde_json::json!({"measure": "port_to_ping_ms", "values": took}));
    record(serde_json::json!({"measure": "port_create_api_ms", "values": api}));


    // Throughput: the overlay, machine on node 1 to machine on node 2.
    let (a, b) = (hosts.machine("a"), hosts.machine("b"));
    hosts.expect("acme", 201, "POST", "/vpcs/blue/securitygroups", Some(r#"{"name":"bulk","spec":{}}"#));
    hosts.expect("acme", 201, "POST", "/vpcs/blue/subnets", Some(r#"{"name":"bulk","spec":{"cidr":"10.0.16.0/24"}}"#));
    hosts.port("acme", "blue", "bulk", "a", Some("10.0.16.10"), 1, &a);
    hosts.port_in("acme", "blue", "bulk", "b", Some("10.0.16.11"), 2, &b, &["mesh", "bulk"]);
    let mut server = iperf_server(&b);
    assert!(common::hosts::wait_ping(&a, "10.0.16.11", Duration::from_secs(10)).is_some());
    let overlay = best_of(rounds, || iperf(&a, "10.0.16.11", seconds));
    record(serde_json::json!({"measure": "overlay_bps", "value": overlay}));

    // The overlay alone: a VPC whose ports turned port security off (no tables, no
    // connection tracking on its path), as the hand-built one below.
    hosts.network("acme", "green", "10.1.0.0/16", "front", "10.1.0.0/24");
    let (c, d) = (hosts.machine("c"), hosts.machine("d"));
    for (name, ip, node, machine) in [("c", "10.1.0.10", 1, &c), ("d", "10.1.0.11", 2, &d)] {
        let body = format!(
            r#"{{"name":"{name}","spec":{{"ip":"{ip}","port_security":false,"binding":{{"node":"{}","netns":"{machine}","configure":true}}}}}}"#,
            hosts.cluster.nodes[node].name
        );
        hosts.expect("acme", 201, "POST", "/vpcs/green/subnets/front/ports", Some(&body));
    }
    let mut plain = iperf_server(&d);
    assert!(common::hosts::wait_ping(&c, "10.1.0.11", Duration::from_secs(10)).is_some());
    let unfiltered = best_of(rounds, || iperf(&c, "10.1.0.11", seconds));
    record(serde_json::json!({"measure": "overlay_unfiltered_bps", "value": unfiltered}));
    let _ = plain.kill();

    // The same with 1,000 rules in the receiving port's group (none of them its flow's).
    let token = std::sync::Arc::new(hosts);
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let hosts = token.clone();
            std::thread::spawn(move || {
                for i in (w..1000).step_by(8) {
                    let body = format!(
                        r#"{{"name":"r{i}","spec":{{"direction":"ingress","protocol":"tcp","port_min":{},"remote_cidr":"172.{}.{}.0/24"}}}}"#,
                        10000 + i,
                        16 + i / 256,
                        i % 256
                    );
                    hosts.expect("acme", 201, "POST", "/vpcs/blue/securitygroups/bulk/rules", Some(&body));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a rule writer");
    }
    let hosts = std::sync::Arc::try_unwrap(token).unwrap_or_else(|_| panic!("the rule writers are done"));
    // The rules are in: b's node applied them (its metrics count them).
    hosts.cluster.wait_for("1,000 rules applied on node 2", Duration::from_secs(60), |c| {
        let (_, metrics) = c.curl(2, "https://127.0.0.1:9091/metrics");
        metrics.as_str().unwrap_or_default().lines().any(|l| {
            l.starts_with("prismnet_vpc_filter_rules{")
                && l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v >= 1000)
        })
    });
    let ruled = best_of(rounds, || iperf(&a, "10.0.16.11", seconds));
    record(serde_json::json!({"measure": "overlay_1000_rules_bps", "value": ruled}));
    let _ = server.kill();

    // Plain veth routing over the same underlay: a machine behind each node, routed by the
    // nodes, no encapsulation.
    let (n1, n2) = (hosts.cluster.lab.ns(1), hosts.cluster.lab.ns(2));
    let (r1, r2) = (hosts.machine("r1"), hosts.machine("r2"));
    for (node, machine, net, other_net, other_node) in [(&n1, &r1, "10.97.1", "10.97.2", hosts.cluster.lab.addr(2)), (&n2, &r2, "10.97.2", "10.97.1", hosts.cluster.lab.addr(1))] {
        run("ip", &["-n", node, "link", "add", "rv0", "type", "veth", "peer", "name", "eth0", "netns", machine]);
        run("ip", &["-n", node, "addr", "add", &format!("{net}.1/24"), "dev", "rv0"]);
        run("ip", &["-n", node, "link", "set", "rv0", "up"]);
        run("ip", &["-n", machine, "addr", "add", &format!("{net}.2/24"), "dev", "eth0"]);
        run("ip", &["-n", machine, "link", "set", "eth0", "up"]);
        run("ip", &["-n", machine, "route", "add", "default", "via", &format!("{net}.1")]);
        run("ip", &["-n", node, "route", "add", &format!("{other_net}.0/24"), "via", &other_node]);
        run("ip", &["netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    }
    let mut server = iperf_server(&r2);
    let routed = best_of(rounds, || iperf(&r1, "10.97.2.2", seconds));
    record(serde_json::json!({"measure": "veth_routed_bps", "value": routed}));
    let _ = server.kill();

    // The ceiling: a VXLAN overlay built by hand (bridge, VXLAN with a static default entry
    // toward the other node, veth), no rules, no namespace per VPC.
    let (h1, h2) = (hosts.machine("h1"), hosts.machine("h2"));
    for (node, machine, ip, local, remote) in [
        (&n1, &h1, "10.98.0.1", hosts.cluster.lab.addr(1), hosts.cluster.lab.addr(2)),
        (&n2, &h2, "10.98.0.2", hosts.cluster.lab.addr(2), hosts.cluster.lab.addr(1)),
    ] {
        run("ip", &["-n", node, "link", "add", "hbr", "type", "bridge"]);
        run("ip", &["-n", node, "link", "add", "hvx", "type", "vxlan", "id", "9999", "local", &local, "dstport", "4790", "nolearning"]);
        run("bridge", &["-n", node, "fdb", "append", "00:00:00:00:00:00", "dev", "hvx", "dst", &remote]);
        run("ip", &["-n", node, "link", "add", "hv0", "type", "veth", "peer", "name", "eth0", "netns", machine]);
        for link in ["hvx", "hv0"] {
            run("ip", &["-n", node, "link", "set", link, "master", "hbr", "mtu", "1450", "up"]);
        }
        run("ip", &["-n", node, "link", "set", "hbr", "up"]);
        run("ip", &["-n", machine, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        run("ip", &["-n", machine, "link", "set", "eth0", "mtu", "1450", "up"]);
    }
    let mut server = iperf_server(&h2);
    let by_hand = best_of(rounds, || iperf(&h1, "10.98.0.2", seconds));
    record(serde_json::json!({"measure": "vxlan_by_hand_bps", "value": by_hand}));
    let _ = server.kill();
}
