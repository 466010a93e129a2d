//! The overlay on the real kernel, across test hosts (network namespaces joined by an underlay
//! link, photon-testkit's harness) with prismnet on each: machines of one VPC on different
//! hosts reach each other by ping and TCP, also across subnets through the distributed
//! gateway; two tenants' VPCs with the same addresses stay apart; prismnet killed -9 and
//! restarted leaves a TCP stream flowing; a device deleted by hand comes back.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::hosts::{echo_server, greeter, greeting, ping, run, wait_ping, within, Hosts, Stream};

const SETTLE: Duration = Duration::from_secs(20);

#[test]
fn machines_of_a_vpc_reach_each_other_across_hosts_and_same_address_vpcs_stay_apart() {
    let hosts = Hosts::start(2);
    let machines: Vec<String> = ["a", "b", "c", "x", "y"].iter().map(|m| hosts.machine(m)).collect();
    let [a, b, c, x, y] = [&machines[0], &machines[1], &machines[2], &machines[3], &machines[4]];

    // acme: a on node 1, b and c on node 2 (c in a second subnet).
    hosts.network("acme", "blue", "10.0.0.0/16", "front", "10.0.1.0/24");
    hosts.expect("acme", 201, "POST", "/vpcs/blue/subnets", Some(r#"{"name":"back","spec":{"cidr":"10.0.2.0/24"}}"#));
    hosts.port("acme", "blue", "front", "a", Some("10.0.1.10"), 1, a);
    hosts.port("acme", "blue", "front", "b", Some("10.0.1.11"), 2, b);
    hosts.port("acme", "blue", "back", "c", Some("10.0.2.10"), 2, c);
    // beta: the very same addresses, x on node 1 and y on node 2.
    hosts.network("beta", "blue", "10.0.0.0/16", "front", "10.0.1.0/24");
    hosts.port("beta", "blue", "front", "a", Some("10.0.1.10"), 1, x);
    hosts.port("beta", "blue", "front", "b", Some("10.0.1.11"), 2, y);

    // A port whose machine is gone holds up nothing else of its VPC.
    let nowhere = hosts.cluster.lab.extra_ns("nowhere");
    let ghost = format!(r#"{{"name":"ghost","spec":{{"binding":{{"node":"{}","netns":"{nowhere}"}}}}}}"#, hosts.cluster.nodes[1].name);
    hosts.expect("acme", 201, "POST", "/vpcs/blue/subnets/front/ports", Some(&ghost));
    // A VM's tap on node 2 is moved onto its VPC's bridge.
    let node2 = hosts.cluster.lab.ns(2);
    run("ip", &["-n", &node2, "tuntap", "add", "dev", "vmtap0", "mode", "tap"]);
    let tap = format!(r#"{{"name":"vm","spec":{{"binding":{{"node":"{}","device":"tap","ifname":"vmtap0"}}}}}}"#, hosts.cluster.nodes[2].name);
    hosts.expect("acme", 201, "POST", "/vpcs/blue/subnets/front/ports", Some(&tap));

    let took = wait_ping(a, "10.0.1.11", SETTLE).unwrap_or_else(|| panic!("a never reached b\n{}", hosts.logs()));
    eprintln!("a pinged b across hosts {took:?} after the ports were created");
    assert!(ping(a, "10.0.1.1"), "the gateway answers on a's own node");
    assert!(wait_ping(a, "10.0.2.10", SETTLE).is_some(), "a reaches c in the other subnet through the gateway\n{}", hosts.logs());
    assert!(wait_ping(x, "10.0.1.11", SETTLE).is_some(), "x reaches y in beta's VPC\n{}", hosts.logs());

    // TCP, and each VPC reaches its own machine at the shared address.
    greeter(b, 7000, "acme-b");
    greeter(y, 7000, "beta-y");
    let to = |ip: &str| SocketAddr::new(ip.parse().expect("an address"), 7000);
    assert_eq!(greeting(a, to("10.0.1.11")).as_deref(), Some("acme-b"));
    assert_eq!(greeting(x, to("10.0.1.11")).as_deref(), Some("beta-y"));
    greeter(c, 7000, "acme-c");
    assert_eq!(greeting(a, to("10.0.2.10")).as_deref(), Some("acme-c"));
    assert_eq!(greeting(x, to("10.0.2.10")), None, "beta has no 10.0.2.10");

    // The health of a node with ports counts them.
    let (_, health) = hosts.cluster.health(2, "prismnet");
    assert_eq!((health["vpcs"].as_u64(), health["ports"].as_u64(), health["dataplane"].as_str()), (Some(2), Some(4), Some("converged")), "{health}");

    // The ghost port: node 1 says which port of which VPC it cannot plug in, and recovers
    // once it is gone.
    let (code, health) = hosts.cluster.health(1, "prismnet");
    assert_eq!((code, health["status"].as_str()), (503, Some("degraded")), "{health}");
    assert!(health["dataplane"].as_str().unwrap_or_default().contains("failing"), "{health}");
    assert!(hosts.cluster.log(1, "prismnet").contains(&format!("network namespace /run/netns/{nowhere}")), "the log names the namespace");
    hosts.expect("acme", 204, "DELETE", "/vpcs/blue/subnets/front/ports/ghost", None);
    hosts.cluster.wait_for("node 1 converged again", Duration::from_secs(10), |c| c.health(1, "prismnet").1["dataplane"] == "converged");
    // The tap left node 2's own namespace for the VPC's bridge.
    assert!(!run_ok("ip", &["-n", &node2, "link", "show", "vmtap0"]), "the tap was moved");
    let vpc_ns = run("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|n| n.starts_with(&format!("{node2}v")) && run("ip", &["-n", n, "-d", "-o", "link"]).contains("tun type tap"))
        .map(str::to_string);
    let links = vpc_ns.map(|ns| run("ip", &["-n", &ns, "-d", "-o", "link"])).unwrap_or_default();
    assert!(links.lines().any(|l| l.contains("tun type tap") && l.contains("master br0")), "the tap is on the bridge: {links}");

    // And its metrics, per VPC: ports, rules, reconcile times.
    let (_, metrics) = hosts.cluster.curl(2, "https://127.0.0.1:9091/metrics");
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let acme_ports = metrics.lines().find(|l| l.starts_with("prismnet_vpc_ports{") && l.contains("project=\"acme/web\""));
    assert!(acme_ports.is_some_and(|l| l.ends_with(" 3")), "b, c and the VM: {metrics}");
    assert!(metrics.contains("prismnet_vpc_filter_rules{") && metrics.contains("prismnet_vpc_reconcile_duration_seconds_count{"), "{metrics}");

    // Converged means converged: a resync (every 2 s here) changes nothing.
    let converges = |c: &photon_testkit::cluster::Cluster| c.log(1, "prismnet").matches("converged a VPC").count();
    let before = converges(&hosts.cluster);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(converges(&hosts.cluster), before, "a resync of converged VPCs changed something:\n{}", hosts.cluster.log(1, "prismnet"));

    // A port deleted: its machine is cut off, its device gone; the others still talk.
    hosts.expect("acme", 204, "DELETE", "/vpcs/blue/subnets/front/ports/b", None);
    let gone = Instant::now();
    while ping(a, "10.0.1.11") {
        assert!(gone.elapsed() < Duration::from_secs(5), "b still answers after its port was deleted");
    }
    let links = run("ip", &["-n", b, "-o", "link"]);
    assert!(!links.contains("eth0"), "b's end of the port is gone: {links}");
    assert!(ping(a, "10.0.2.10"));
    assert!(ping(x, "10.0.1.11"));

    // A VPC deleted: its namespace goes from every node.
    hosts.expect("beta", 204, "DELETE", "/vpcs/blue", None);
    let prefix = format!("{}v", hosts.cluster.lab.ns(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let namespaces = run("ip", &["netns", "list"]);
        let on_node1 = namespaces.lines().filter(|l| l.starts_with(&prefix)).count();
        if on_node1 == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "beta's VPC namespace stays on node 1: {namespaces}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_prismnet_disturbs_no_stream_and_a_device_deleted_by_hand_comes_back() {
    let hosts = Hosts::start(2);
    let (a, b) = (hosts.machine("a"), hosts.machine("b"));
    hosts.network("acme", "blue", "10.0.0.0/16", "front", "10.0.1.0/24");
    hosts.port("acme", "blue", "front", "a", Some("10.0.1.10"), 1, &a);
    hosts.port("acme", "blue", "front", "b", Some("10.0.1.11"), 2, &b);
    assert!(wait_ping(&a, "10.0.1.11", SETTLE).is_some(), "a reaches b\n{}", hosts.logs());

    // A stream from a to b: b echoes every message; a checks each reply.
    echo_server(&b, 7001);
    let stream = Stream::start(&a, "10.0.1.11:7001".parse().expect("an address"));

    // prismnet on both nodes killed -9 and restarted, the stream going on throughout.
    std::thread::sleep(Duration::from_millis(500));
    let mut hosts = hosts;
    for i in [1, 2] {
        hosts.cluster.nodes[i].service("prismnet").kill9();
    }
    std::thread::sleep(Duration::from_secs(1));
    for i in [1, 2] {
        hosts.cluster.start_service(i, "prismnet");
    }
    hosts.cluster.wait_for("prismnet converged again on node 2", Duration::from_secs(20), |c| {
        c.health(2, "prismnet").1["dataplane"] == "converged"
    });
    std::thread::sleep(Duration::from_secs(1));
    let (exchanged, worst) = stream.finish().unwrap_or_else(|e| panic!("the stream broke: {e}\n{}", hosts.logs()));
    eprintln!("{exchanged} round trips across the restarts, the slowest {worst:?}");
    assert!(exchanged > 100 && worst < Duration::from_millis(500), "{exchanged} round trips, slowest {worst:?}");

    // Drift: an operator deletes the VPC's VXLAN device on node 2; the next resync (or the
    // node's own event) puts it back and b answers again.
    let vpc_ns = run("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|n| n.starts_with(&format!("{}v", hosts.cluster.lab.ns(2))))
        .map(str::to_string)
        .expect("the VPC's namespace on node 2");
    run("ip", &["-n", &vpc_ns, "link", "del", "vxlan0"]);
    assert!(!ping(&a, "10.0.1.11"), "without the VXLAN device b is cut off");
    let back = wait_ping(&a, "10.0.1.11", SETTLE).unwrap_or_else(|| panic!("the VXLAN device never came back\n{}", hosts.logs()));
    eprintln!("the deleted VXLAN device was recreated and b answered {back:?} later");
}

#[test]
fn a_machine_gets_its_ports_address_gateway_dns_routes_and_name_by_dhcp() {
    let hosts = Hosts::start_with(1, true);
    let m = hosts.machine("d");
    hosts.network("acme", "blue", "10.0.0.0/16", "front", "10.0.1.0/24");
    let subnet = r#"{"spec":{"cidr":"10.0.1.0/24","dns_servers":["10.0.0.2","10.0.0.3"],"routes":[{"destination":"192.168.0.0/16","nexthop":"10.0.1.254"}]}}"#;
    hosts.expect("acme", 200, "PUT", "/vpcs/blue/subnets/front", Some(subnet));
    // Not configured by prismnet: the machine asks.
    let body = format!(r#"{{"name":"d","spec":{{"binding":{{"node":"{}","netns":"{m}"}}}}}}"#, hosts.cluster.nodes[1].name);
    let port = hosts.expect("acme", 201, "POST", "/vpcs/blue/subnets/front/ports", Some(&body));
    let ip = port["spec"]["ip"].as_str().expect("an address").to_string();
    let plugged = within(Duration::from_secs(10), || run_ok("ip", &["-n", &m, "link", "set", "eth0", "up"]));
    assert!(plugged.is_some(), "the port's device never appeared in the machine\n{}", hosts.logs());

    // busybox udhcpc, its script writing down what it was given.
    let dir = tempfile::tempdir().expect("a temp dir");
    let script = dir.path().join("script");
    let lease = dir.path().join("lease");
    std::fs::write(&script, format!("#!/bin/sh\n[ \"$1\" = bound ] && echo \"ip=$ip subnet=$subnet router=$router dns=$dns mtu=$mtu routes=$staticroutes host=$hostname domain=$domain\" > {}\nexit 0\n", lease.display()))
        .expect("write the script");
    run("chmod", &["+x", &script.display().to_string()]);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &m, "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", &script.display().to_string()])
        .output()
        .expect("udhcpc runs (scripts/setup installs it)");
    let got = std::fs::read_to_string(&lease).unwrap_or_default();
    assert!(
        got.contains(&format!("ip={ip} ")) && got.contains("subnet=255.255.255.0") && got.contains("router=10.0.1.1"),
        "udhcpc got {got:?}: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        hosts.logs()
    );
    assert!(got.contains("dns=10.0.0.2 10.0.0.3") && got.contains("mtu=1450"), "{got}");
    assert!(got.contains("192.168.0.0/16 10.0.1.254") && got.contains("0.0.0.0/0 10.0.1.1"), "{got}");
    // Its name: the port's, in its subnet's domain, which FlashDNS answers.
    let domain = "front.blue.web.acme.photon.internal";
    assert!(got.contains(&format!("host=d domain={domain}")), "{got}");
    let name = format!("d.{domain}");
    let answered = within(Duration::from_secs(10), || {
        let out = hosts.cluster.lab.exec(0, "dig", &["@127.0.0.1", "+time=1", "+tries=1", "+short", &name, "A"]);
        String::from_utf8_lossy(&out.stdout).trim() == ip
    });
    assert!(answered.is_some(), "FlashDNS never answered {name} with {ip}\n{}", hosts.logs());
}

/// Runs a command; whether it succeeded.
fn run_ok(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program).args(args).output().map(|o| o.status.success()).unwrap_or(false)
}
