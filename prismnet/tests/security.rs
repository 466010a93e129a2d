//! Security groups and anti-spoofing on the real kernel, across two test hosts: a port takes
//! no new connection until a rule allows it; a rule added or removed, or a port joining or
//! leaving a remote group, takes effect for new flows within a second; an established flow
//! carries on (connection tracking); a machine sending from another address or MAC is dropped.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::hosts::{echo_server, greeter, greeting_within, ping, run, wait_ping, within, Hosts, Stream};

const SECOND: Duration = Duration::from_secs(1);

fn greets(machine: &str, addr: SocketAddr) -> bool {
    greeting_within(machine, addr, Duration::from_millis(150)).as_deref() == Some("b")
}

/// Port `port`'s groups set to `groups`, as a client does it: read, change, write back.
fn set_groups(hosts: &Hosts, port: &str, groups: &[&str]) {
    let path = format!("/vpcs/blue/subnets/front/ports/{port}");
    let mut current = hosts.expect("acme", 200, "GET", &path, None);
    current["spec"]["security_groups"] = serde_json::json!(groups);
    let body = serde_json::json!({"spec": current["spec"], "resource_version": current["metadata"]["resource_version"]});
    hosts.expect("acme", 200, "PUT", &path, Some(&body.to_string()));
}

#[test]
fn rules_and_membership_take_effect_within_a_second_established_flows_carry_on_and_spoofing_is_dropped() {
    let hosts = Hosts::start(2);
    let (a, b) = (hosts.machine("a"), hosts.machine("b"));
    hosts.network("acme", "blue", "10.0.0.0/16", "front", "10.0.1.0/24");
    for group in ["web", "clients"] {
        hosts.expect("acme", 201, "POST", "/vpcs/blue/securitygroups", Some(&format!(r#"{{"name":"{group}","spec":{{}}}}"#)));
    }
    hosts.port_in("acme", "blue", "front", "a", Some("10.0.1.10"), 1, &a, &["clients"]);
    hosts.port_in("acme", "blue", "front", "b", Some("10.0.1.11"), 2, &b, &["web"]);
    greeter(&b, 7000, "b");
    echo_server(&b, 7001);
    let web: SocketAddr = "10.0.1.11:7000".parse().expect("an address");
    // Both plugged in (each answers its own gateway, which no group filters).
    assert!(wait_ping(&a, "10.0.1.1", Duration::from_secs(20)).is_some(), "a is plugged in\n{}", hosts.logs());
    assert!(wait_ping(&b, "10.0.1.1", Duration::from_secs(20)).is_some(), "b is plugged in\n{}", hosts.logs());

    // Default: nothing new gets in.
    assert!(!greets(&a, web), "b takes no connection before a rule allows it");
    assert!(!ping(&a, "10.0.1.11"));

    // A rule: TCP 7000 from the clients group. In effect for new flows within a second.
    let rule = r#"{"name":"http","spec":{"direction":"ingress","protocol":"tcp","port_min":7000,"remote_group":"clients"}}"#;
    hosts.expect("acme", 201, "POST", "/vpcs/blue/securitygroups/web/rules", Some(rule));
    let took = within(Duration::from_secs(5), || greets(&a, web)).unwrap_or_else(|| panic!("the rule never applied\n{}", hosts.logs()));
    eprintln!("a rule added took effect in {took:?}");
    assert!(took < SECOND, "a rule added took {took:?}");
    assert!(!ping(&a, "10.0.1.11"), "ICMP is still not allowed");

    // Membership: a stream on 7001 needs its own rule; opened, then a leaves the group.
    let rule = r#"{"name":"echo","spec":{"direction":"ingress","protocol":"tcp","port_min":7001,"remote_group":"clients"}}"#;
    hosts.expect("acme", 201, "POST", "/vpcs/blue/securitygroups/web/rules", Some(rule));
    let echo: SocketAddr = "10.0.1.11:7001".parse().expect("an address");
    // (Rules apply within a second, as measured above.)
    std::thread::sleep(SECOND);
    let stream = Stream::start(&a, echo);
    std::thread::sleep(Duration::from_millis(300));
    set_groups(&hosts, "a", &[]);
    let took = within(Duration::from_secs(5), || !greets(&a, web)).unwrap_or_else(|| panic!("leaving the group never applied"));
    eprintln!("leaving a remote group took effect in {took:?}");
    assert!(took < SECOND, "leaving a group took {took:?}");
    std::thread::sleep(Duration::from_millis(500));
    let (exchanged, _) = stream.finish().unwrap_or_else(|e| panic!("the established stream broke when a left the group: {e}"));
    assert!(exchanged > 50, "{exchanged} round trips");
    set_groups(&hosts, "a", &["clients"]);
    let took = within(Duration::from_secs(5), || greets(&a, web)).unwrap_or_else(|| panic!("joining the group never applied"));
    assert!(took < SECOND, "joining a group took {took:?}");

    // The rule removed: new flows stop within a second.
    hosts.expect("acme", 204, "DELETE", "/vpcs/blue/securitygroups/web/rules/http", None);
    let took = within(Duration::from_secs(5), || !greets(&a, web)).unwrap_or_else(|| panic!("the rule's removal never applied"));
    eprintln!("a rule removed took effect in {took:?}");
    assert!(took < SECOND, "a rule removed took {took:?}");

    // Spoofing: with everything allowed in, a's own address gets through; another address
    // on a's port, or another MAC, does not.
    let open = r#"{"name":"all","spec":{"direction":"ingress","remote_cidr":"0.0.0.0/0"}}"#;
    hosts.expect("acme", 201, "POST", "/vpcs/blue/securitygroups/web/rules", Some(open));
    assert!(within(Duration::from_secs(5), || ping(&a, "10.0.1.11")).is_some(), "a pings b once all is allowed");
    run("ip", &["-n", &a, "addr", "add", "10.0.1.99/24", "dev", "eth0"]);
    let spoofed = std::process::Command::new("ip")
        .args(["netns", "exec", &a, "ping", "-c", "2", "-W", "1", "-q", "-I", "10.0.1.99", "10.0.1.11"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(true);
    assert!(!spoofed, "a spoofed source address is dropped");
    assert!(ping(&a, "10.0.1.11"), "a's own address still gets through");
    run("ip", &["-n", &a, "link", "set", "eth0", "address", "02:00:00:00:00:99"]);
    run("ip", &["-n", &b, "neigh", "flush", "dev", "eth0"]);
    assert!(!ping(&a, "10.0.1.11"), "a spoofed MAC is dropped");
}
