//! The way out, on the real kernel across test hosts whose shared segment doubles as the
//! external network (node 0 stands for the outside): a router takes a subnet out with SNAT to
//! the node's address; a floating IP brings the outside in to its port (and the port's own
//! traffic out from it) until it is removed; a subnet no router routes stays in.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::hosts::{address_echo, greeter, greeting, greeting_within, within, Hosts};

const SETTLE: Duration = Duration::from_secs(10);

#[test]
fn a_router_takes_a_subnet_out_with_snat_and_a_floating_ip_brings_the_outside_in_until_removed() {
    let hosts = Hosts::start(2);
    let (a, b) = (hosts.machine("a"), hosts.machine("b"));
    let outside = hosts.cluster.lab.ns(0);
    hosts.network("acme", "blue", "10.0.0.0/16", "front", "10.0.1.0/24");
    hosts.expect("acme", 201, "POST", "/vpcs/blue/subnets", Some(r#"{"name":"back","spec":{"cidr":"10.0.2.0/24"}}"#));
    hosts.expect("acme", 201, "POST", "/vpcs/blue/securitygroups", Some(r#"{"name":"web","spec":{}}"#));
    let rule = r#"{"name":"http","spec":{"direction":"ingress","protocol":"tcp","port_min":7000,"remote_cidr":"0.0.0.0/0"}}"#;
    hosts.expect("acme", 201, "POST", "/vpcs/blue/securitygroups/web/rules", Some(rule));
    hosts.port("acme", "blue", "front", "a", Some("10.0.1.10"), 1, &a);
    hosts.port_in("acme", "blue", "back", "b", Some("10.0.2.10"), 2, &b, &["mesh", "web"]);
    address_echo(&outside, 7200);
    greeter(&b, 7000, "b");
    let server: SocketAddr = format!("{}:7200", hosts.cluster.lab.addr(0)).parse().expect("an address");
    let quick = |machine: &str, to: SocketAddr| greeting_within(machine, to, Duration::from_millis(300));
    assert!(within(SETTLE, || common::hosts::ping(&a, "10.0.1.1")).is_some(), "a is plugged in\n{}", hosts.logs());
    assert_eq!(quick(&a, server), None, "no router, no way out");

    // A router for front: a reaches the outside, which sees node 1's address.
    hosts.expect("acme", 201, "POST", "/vpcs/blue/routers", Some(r#"{"name":"out","spec":{"subnets":["front"]}}"#));
    let node1 = format!("from {}", hosts.cluster.lab.addr(1));
    let took = within(SETTLE, || quick(&a, server).as_deref() == Some(node1.as_str()))
        .unwrap_or_else(|| panic!("a never got out through the router: {:?}\n{}", quick(&a, server), hosts.logs()));
    eprintln!("a router took {took:?} to take a subnet out");
    assert_eq!(quick(&b, server), None, "back is not routed");

    // A floating IP for b: the outside reaches b at it, and b's own traffic leaves from it.
    let fip = hosts.expect("acme", 201, "POST", "/floatingips", Some(r#"{"name":"web","spec":{"port":{"vpc":"blue","subnet":"back","port":"b"}}}"#));
    let address = fip["spec"]["address"].as_str().expect("an address").to_string();
    let public: SocketAddr = format!("{address}:7000").parse().expect("an address");
    let took = within(SETTLE, || quick(&outside, public).as_deref() == Some("b"))
        .unwrap_or_else(|| panic!("the floating IP {address} never reached b\n{}", hosts.logs()));
    eprintln!("a floating IP took {took:?} to answer from outside");
    assert_eq!(greeting(&b, server), Some(format!("from {address}")), "b leaves from its floating IP");

    // Removed: the outside no longer reaches b; the router removed: a is in again.
    hosts.expect("acme", 204, "DELETE", "/floatingips/web", None);
    assert!(within(SETTLE, || quick(&outside, public).is_none()).is_some(), "the floating IP still answers after its removal");
    hosts.expect("acme", 204, "DELETE", "/vpcs/blue/routers/out", None);
    assert!(within(SETTLE, || quick(&a, server).is_none()).is_some(), "a still gets out after the router's removal");
}
