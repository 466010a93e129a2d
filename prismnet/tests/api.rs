//! PrismNET's management API over REST with curl (dataplane off): every kind created, read,
//! listed and deleted by its tenant; IPAM handing out addresses, MACs, VNIs and pool addresses
//! once each, also under 200 concurrent creates; bad input answered with the field at fault and
//! nothing half-made; and another tenant refused on every route.

mod common;

use std::collections::HashSet;

use common::Stack;
use serde_json::Value;

const VPC: &str = "/vpcs/blue";
const SUBNET: &str = "/vpcs/blue/subnets/front";
const PORTS: &str = "/vpcs/blue/subnets/front/ports";

fn network(stack: &Stack) {
    stack.expect(201, "POST", "/vpcs", Some(r#"{"name":"blue","spec":{"cidr":"10.0.0.0/16"}}"#));
    stack.expect(
        201,
        "POST",
        "/vpcs/blue/subnets",
        Some(r#"{"name":"front","spec":{"cidr":"10.0.1.0/24","dns_servers":["10.0.0.2"],"routes":[{"destination":"192.168.0.0/16","nexthop":"10.0.1.254"}]}}"#),
    );
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_builds_a_network_and_the_server_assigns_what_was_left_out() {
    let stack = Stack::start().await;
    network(&stack);

    // The VPC got a VNI from the assigned range; the subnet its first host as gateway.
    let vpc = stack.expect(200, "GET", VPC, None);
    let vni = vpc["spec"]["vni"].as_u64().expect("a VNI");
    assert!((4096..=16_000_000).contains(&vni), "{vpc}");
    let subnet = stack.expect(200, "GET", SUBNET, None);
    assert_eq!(subnet["spec"]["gateway"], "10.0.1.1");
    assert_eq!(subnet["spec"]["dhcp"], true);

    // A port gets a free address of its subnet (never the gateway, network or broadcast) and
    // a MAC derived from it; a fixed address is kept, and claimed once.
    let port = stack.expect(201, "POST", PORTS, Some(r#"{"name":"a","spec":{}}"#));
    let ip: std::net::Ipv4Addr = port["spec"]["ip"].as_str().and_then(|s| s.parse().ok()).expect("an address");
    assert!(ip.octets()[..3] == [10, 0, 1] && ![0, 1, 255].contains(&ip.octets()[3]), "{port}");
    let o = ip.octets();
    assert_eq!(port["spec"]["mac"], format!("02:7e:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]));
    let fixed = stack.expect(201, "POST", PORTS, Some(r#"{"name":"b","spec":{"ip":"10.0.1.200","mac":"52:54:00:12:34:56"}}"#));
    assert_eq!((fixed["spec"]["ip"].as_str(), fixed["spec"]["mac"].as_str()), (Some("10.0.1.200"), Some("52:54:00:12:34:56")));
    let (status, taken) = stack.api("POST", PORTS, Some(r#"{"name":"c","spec":{"ip":"10.0.1.200"}}"#), &stack.tenant);
    assert_eq!(status, 409, "an address serves one port: {taken}");
    assert!(taken["error"]["message"].as_str().unwrap_or("").contains("10.0.1.200"), "{taken}");

    // The address and MAC cannot change; other fields can.
    let moved = stack.api("PUT", "/vpcs/blue/subnets/front/ports/b", Some(r#"{"spec":{"ip":"10.0.1.201"}}"#), &stack.tenant);
    assert_eq!(moved.0, 400, "{}", moved.1);
    assert!(moved.1["error"]["message"].as_str().unwrap_or("").contains("spec.ip"), "{}", moved.1);
    stack.expect(201, "POST", "/vpcs/blue/securitygroups", Some(r#"{"name":"web","spec":{}}"#));
    let grouped = stack.expect(200, "PUT", "/vpcs/blue/subnets/front/ports/b", Some(r#"{"spec":{"security_groups":["web"]}}"#));
    assert_eq!(grouped["spec"]["ip"], "10.0.1.200", "the address is carried over: {grouped}");

    // Deleting a port releases its address.
    stack.expect(204, "DELETE", "/vpcs/blue/subnets/front/ports/b", None);
    stack.expect(201, "POST", PORTS, Some(r#"{"name":"c","spec":{"ip":"10.0.1.200"}}"#));

    // Rules, routers, floating and service IPs.
    stack.expect(
        201,
        "POST",
        "/vpcs/blue/securitygroups/web/rules",
        Some(r#"{"name":"http","spec":{"direction":"ingress","protocol":"tcp","port_min":80,"port_max":80,"remote_cidr":"0.0.0.0/0"}}"#),
    );
    stack.expect(
        201,
        "POST",
        "/vpcs/blue/securitygroups/web/rules",
        Some(r#"{"name":"peers","spec":{"direction":"ingress","remote_group":"web"}}"#),
    );
    stack.expect(201, "POST", "/vpcs/blue/routers", Some(r#"{"name":"out","spec":{"subnets":["front"]}}"#));
    let fip = stack.expect(
        201,
        "POST",
        "/floatingips",
        Some(r#"{"name":"a","spec":{"port":{"vpc":"blue","subnet":"front","port":"a"}}}"#),
    );
    let address: std::net::Ipv4Addr = fip["spec"]["address"].as_str().and_then(|s| s.parse().ok()).expect("an address");
    assert!(address.octets()[..3] == [203, 0, 113] && (1..=14).contains(&address.octets()[3]), "{fip}");
    let service = stack.expect(201, "POST", "/serviceips", Some(r#"{"name":"api","spec":{}}"#));
    assert!(service["spec"]["address"].as_str().unwrap_or("").starts_with("10.96.0."), "{service}");

    // Deleting the VPC takes everything under it; its VNI is free again.
    assert_eq!(items(&stack.expect(200, "GET", PORTS, None)).len(), 2);
    stack.expect(204, "DELETE", VPC, None);
    stack.expect(404, "GET", SUBNET, None);
    stack.expect(404, "GET", "/vpcs/blue/securitygroups/web/rules/http", None);
    network(&stack);
    stack.expect(201, "POST", PORTS, Some(r#"{"name":"b","spec":{"ip":"10.0.1.200"}}"#));
    let again = format!(r#"{{"name":"green","spec":{{"cidr":"10.0.0.0/16","vni":{vni}}}}}"#);
    let (status, json) = stack.api("POST", "/vpcs", Some(&again), &stack.tenant);
    assert!(status == 201 || status == 409, "{json}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_naming_the_field_and_leaves_nothing_behind() {
    let stack = Stack::start().await;
    network(&stack);
    let cases: &[(&str, &str, &str)] = &[
        ("/vpcs", r#"{"name":"x","spec":{"cidr":"10.0.0.0/4"}}"#, "spec.cidr"),
        ("/vpcs", r#"{"name":"x","spec":{"cidr":"10.0.0.1/16"}}"#, "spec.cidr"),
        ("/vpcs", r#"{"name":"x","spec":{"cidr":"127.0.0.0/16"}}"#, "spec.cidr"),
        ("/vpcs", r#"{"name":"x","spec":{"cidr":"10.0.0.0/16","vni":0}}"#, "spec.vni"),
        ("/vpcs", r#"{"name":"x","spec":{"cidr":"not an address"}}"#, "cidr"),
        ("/vpcs/blue/subnets", r#"{"name":"x","spec":{"cidr":"10.1.0.0/24"}}"#, "spec.cidr"),
        ("/vpcs/blue/subnets", r#"{"name":"x","spec":{"cidr":"10.0.1.128/25"}}"#, "spec.cidr"),
        ("/vpcs/blue/subnets", r#"{"name":"x","spec":{"cidr":"10.0.0.0/17"}}"#, "spec.cidr"),
        ("/vpcs/blue/subnets", r#"{"name":"x","spec":{"cidr":"10.0.2.0/24","gateway":"10.0.3.1"}}"#, "spec.gateway"),
        (
            "/vpcs/blue/subnets",
            r#"{"name":"x","spec":{"cidr":"10.0.2.0/24","dns_servers":["1.1.1.1","1.1.1.2","1.1.1.3","1.1.1.4","1.1.1.5"]}}"#,
            "spec.dns_servers",
        ),
        (
            "/vpcs/blue/subnets",
            r#"{"name":"x","spec":{"cidr":"10.0.2.0/24","routes":[{"destination":"0.0.0.0/0","nexthop":"10.9.9.9"}]}}"#,
            "spec.routes[0].nexthop",
        ),
        (PORTS, r#"{"name":"x","spec":{"ip":"10.0.2.5"}}"#, "spec.ip"),
        (PORTS, r#"{"name":"x","spec":{"ip":"10.0.1.1"}}"#, "spec.ip"),
        (PORTS, r#"{"name":"x","spec":{"ip":"10.0.1.255"}}"#, "spec.ip"),
        (PORTS, r#"{"name":"x","spec":{"mac":"01:00:5e:00:00:01"}}"#, "spec.mac"),
        (PORTS, r#"{"name":"x","spec":{"mac":"02:7e:0a:00:01:09"}}"#, "spec.mac"),
        (PORTS, r#"{"name":"x","spec":{"mac":"zz"}}"#, "spec.mac"),
        (PORTS, r#"{"name":"x","spec":{"security_groups":["nope"]}}"#, "spec.security_groups[0]"),
        (PORTS, r#"{"name":"x","spec":{"binding":{"node":"n1"}}}"#, "spec.binding.netns"),
        (PORTS, r#"{"name":"x","spec":{"binding":{"node":"n1","netns":"../etc"}}}"#, "spec.binding.netns"),
        (PORTS, r#"{"name":"x","spec":{"binding":{"node":"n1","netns":"m","ifname":"a/b"}}}"#, "spec.binding.ifname"),
        (PORTS, r#"{"name":"x","spec":{"binding":{"node":"n1","device":"tap"}}}"#, "spec.binding.ifname"),
        ("/vpcs/blue/routers", r#"{"name":"x","spec":{"subnets":["nope"]}}"#, "spec.subnets[0]"),
        ("/floatingips", r#"{"name":"x","spec":{"address":"198.51.100.1"}}"#, "spec.address"),
        ("/floatingips", r#"{"name":"x","spec":{"port":{"vpc":"blue","subnet":"front","port":"nope"}}}"#, "spec.port"),
    ];
    for (path, body, field) in cases {
        stack.refused("POST", path, body, field);
    }
    let (status, json) = stack.api("POST", "/vpcs", Some(r#"{"name":"x","spec":{"cidr":"10.0.0.0/16","colour":"red"}}"#), &stack.tenant);
    assert_eq!(status, 400, "unknown fields are refused: {json}");
    assert!(json["error"]["message"].as_str().unwrap_or("").contains("colour"), "{json}");
    stack.refused(
        "POST",
        "/vpcs/blue/securitygroups",
        r#"{"name":"web","spec":{"description":"ok"}}"#.replace("ok", &"d".repeat(300)).as_str(),
        "spec.description",
    );
    stack.expect(201, "POST", "/vpcs/blue/securitygroups", Some(r#"{"name":"web","spec":{}}"#));
    for (body, field) in [
        (r#"{"name":"x","spec":{"direction":"sideways"}}"#, "direction"),
        (r#"{"name":"x","spec":{"direction":"ingress","protocol":"tcp","port_min":90,"port_max":80}}"#, "spec.port_max"),
        (r#"{"name":"x","spec":{"direction":"ingress","protocol":"icmp","port_min":80}}"#, "spec.port_min"),
        (r#"{"name":"x","spec":{"direction":"ingress","remote_group":"nope"}}"#, "spec.remote_group"),
        (r#"{"name":"x","spec":{"direction":"ingress","remote_group":"web","remote_cidr":"10.0.0.0/8"}}"#, "spec.remote"),
    ] {
        stack.refused("POST", "/vpcs/blue/securitygroups/web/rules", body, field);
    }
    // A port on a deleted subnet: refused, naming the subnet.
    stack.expect(201, "POST", "/vpcs/blue/subnets", Some(r#"{"name":"gone","spec":{"cidr":"10.0.9.0/24"}}"#));
    stack.expect(204, "DELETE", "/vpcs/blue/subnets/gone", None);
    let (status, json) = stack.api("POST", "/vpcs/blue/subnets/gone/ports", Some(r#"{"name":"x","spec":{}}"#), &stack.tenant);
    assert_eq!(status, 404, "{json}");
    assert!(json["error"]["message"].as_str().unwrap_or("").contains("gone"), "{json}");
    // Under a missing parent nothing is made.
    let (status, json) = stack.api("POST", "/vpcs/nope/subnets", Some(r#"{"name":"x","spec":{"cidr":"10.0.2.0/24"}}"#), &stack.tenant);
    assert_eq!(status, 404, "{json}");
    // Nothing of the refused requests exists.
    assert_eq!(items(&stack.expect(200, "GET", "/vpcs", None)).len(), 1);
    assert_eq!(items(&stack.expect(200, "GET", "/vpcs/blue/subnets", None)).len(), 1);
    assert!(items(&stack.expect(200, "GET", PORTS, None)).is_empty());
    assert!(items(&stack.expect(200, "GET", "/floatingips", None)).is_empty());
    // An exhausted pool says so (the test pool holds 14 addresses).
    for i in 0..14 {
        stack.expect(201, "POST", "/floatingips", Some(&format!(r#"{{"name":"f{i}","spec":{{}}}}"#)));
    }
    let (status, json) = stack.api("POST", "/floatingips", Some(r#"{"name":"f14","spec":{}}"#), &stack.tenant);
    assert_eq!((status, json["error"]["code"].as_str()), (409, Some("exhausted")), "{json}");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenant_is_refused_on_every_route_and_may_reuse_the_same_addresses() {
    let stack = Stack::start().await;
    network(&stack);
    stack.expect(201, "POST", PORTS, Some(r#"{"name":"a","spec":{"ip":"10.0.1.10"}}"#));
    stack.expect(201, "POST", "/vpcs/blue/securitygroups", Some(r#"{"name":"web","spec":{}}"#));
    let routes = [
        ("GET", "/vpcs"),
        ("GET", VPC),
        ("DELETE", VPC),
        ("GET", SUBNET),
        ("POST", "/vpcs/blue/subnets"),
        ("GET", PORTS),
        ("GET", "/vpcs/blue/subnets/front/ports/a"),
        ("DELETE", "/vpcs/blue/subnets/front/ports/a"),
        ("POST", PORTS),
        ("GET", "/vpcs/blue/securitygroups/web"),
        ("POST", "/vpcs/blue/securitygroups/web/rules"),
        ("GET", "/vpcs/blue/routers"),
        ("GET", "/floatingips"),
        ("POST", "/floatingips"),
        ("GET", "/serviceips"),
    ];
    for (method, path) in routes {
        let body = (method == "POST").then_some(r#"{"name":"z","spec":{}}"#);
        let (status, json) = stack.api(method, path, body, &stack.stranger);
        assert_eq!(status, 403, "{method} {path} as another tenant: {json}");
        let (status, json) = stack.api(method, path, body, "not-a-token");
        assert_eq!(status, 401, "{method} {path} without a valid token: {json}");
    }
    assert_eq!(stack.expect(200, "GET", "/vpcs/blue/subnets/front/ports/a", None)["spec"]["ip"], "10.0.1.10");

    // The other tenant's own VPC may use the very same addresses.
    let beta = "/api/v1/orgs/beta/projects/web";
    let mine = |method: &str, path: &str, body: Option<&str>| stack.api(method, &format!("{beta}{path}"), body, &stack.stranger);
    assert_eq!(mine("POST", "/vpcs", Some(r#"{"name":"blue","spec":{"cidr":"10.0.0.0/16"}}"#)).0, 201);
    assert_eq!(mine("POST", "/vpcs/blue/subnets", Some(r#"{"name":"front","spec":{"cidr":"10.0.1.0/24"}}"#)).0, 201);
    let (status, json) = mine("POST", "/vpcs/blue/subnets/front/ports", Some(r#"{"name":"a","spec":{"ip":"10.0.1.10"}}"#));
    assert_eq!(status, 201, "{json}");
    let acme = stack.expect(200, "GET", VPC, None);
    let (_, beta_vpc) = mine("GET", "/vpcs/blue", None);
    assert_ne!(acme["spec"]["vni"], beta_vpc["spec"]["vni"], "each VPC is its own segment");
    // And sees only its own.
    assert_eq!(items(&mine("GET", "/vpcs", None).1).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_ports_created_at_once_never_share_an_address_or_a_mac() {
    let stack = Stack::start().await;
    stack.expect(201, "POST", "/vpcs", Some(r#"{"name":"blue","spec":{"cidr":"10.0.0.0/16"}}"#));
    // Small subnets, so picks collide and the claims must sort them out.
    for s in 0..4 {
        let body = format!(r#"{{"name":"s{s}","spec":{{"cidr":"10.0.{s}.0/25"}}}}"#);
        stack.expect(201, "POST", "/vpcs/blue/subnets", Some(&body));
    }
    let stack = std::sync::Arc::new(stack);
    let workers: Vec<_> = (0..20)
        .map(|w| {
            let stack = stack.clone();
            std::thread::spawn(move || {
                let mut made = Vec::new();
                for i in 0..10 {
                    let n = w * 10 + i;
                    let path = format!("/vpcs/blue/subnets/s{}/ports", n % 4);
                    let (status, json) = stack.api("POST", &path, Some(&format!(r#"{{"name":"p{n}","spec":{{}}}}"#)), &stack.tenant);
                    assert_eq!(status, 201, "port p{n}: {json}");
                    made.push(json);
                }
                made
            })
        })
        .collect();
    let ports: Vec<Value> = workers.into_iter().flat_map(|w| w.join().expect("a worker")).collect();
    assert_eq!(ports.len(), 200);
    let ips: HashSet<&str> = ports.iter().filter_map(|p| p["spec"]["ip"].as_str()).collect();
    let macs: HashSet<&str> = ports.iter().filter_map(|p| p["spec"]["mac"].as_str()).collect();
    assert_eq!((ips.len(), macs.len()), (200, 200), "no address or MAC handed out twice");
    // And what is stored agrees.
    let mut stored = HashSet::new();
    for s in 0..4 {
        for port in items(&stack.expect(200, "GET", &format!("/vpcs/blue/subnets/s{s}/ports"), None)) {
            stored.insert(port["spec"]["ip"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(stored.len(), 200);
}
