//! The plan from resources: which VPCs a node realises and what it programs for each.

use super::*;
use serde_json::json;

use crate::model::fixture::{port, put};

#[test]
fn a_node_realises_only_vpcs_with_a_port_bound_to_it_and_reaches_the_others_through_their_nodes() {
    let layout = crate::model::layout();
    let mut items = BTreeMap::new();
    put(&mut items, "vpcs/blue", json!({"cidr": "10.0.0.0/16", "vni": 5000}));
    put(&mut items, "vpcs/green", json!({"cidr": "10.0.0.0/16", "vni": 6000}));
    put(&mut items, "vpcs.subnets/blue/a", json!({"cidr": "10.0.1.0/24", "gateway": "10.0.1.1"}));
    put(&mut items, "vpcs.subnets/blue/b", json!({"cidr": "10.0.2.0/24", "gateway": "10.0.2.1"}));
    put(&mut items, "vpcs.subnets/green/a", json!({"cidr": "10.0.1.0/24", "gateway": "10.0.1.1"}));
    put(&mut items, "vpcs.subnets.ports/blue/a/m1", port("h1", "10.0.1.5", "02:7e:0a:00:01:05"));
    put(&mut items, "vpcs.subnets.ports/blue/b/m2", port("h2", "10.0.2.7", "02:7e:0a:00:02:07"));
    put(&mut items, "vpcs.subnets.ports/blue/b/m3", port("h9", "10.0.2.9", "02:7e:0a:00:02:09"));
    put(&mut items, "vpcs.subnets.ports/green/a/m4", port("h2", "10.0.1.5", "02:7e:0a:00:01:05"));
    let nodes: BTreeMap<String, Ipv4Addr> =
        [("h1".to_string(), "192.0.2.1".parse().unwrap()), ("h2".to_string(), "192.0.2.2".parse().unwrap())].into();

    let this = |name: &str| ThisNode { name: name.into(), underlay_mtu: 1500, external: false, naming: None, dns_servers: Vec::new() };
    let plan = build(&layout, &items, &nodes, &this("h1"));
    assert_eq!(plan.vpcs.keys().copied().collect::<Vec<_>>(), vec![5000], "green has no port on h1");
    let blue = &plan.vpcs[&5000];
    assert_eq!(blue.mtu, 1450);
    assert_eq!(blue.gateway_mac, [0x02, 0x7f, 0x00, 0x13, 0x88, 0x01]);
    assert_eq!(blue.subnets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(blue.local.len(), 1);
    assert_eq!(blue.local[0].ip, "10.0.1.5".parse::<Ipv4Addr>().unwrap());
    assert_eq!(blue.local[0].gateway, "10.0.1.1".parse::<Ipv4Addr>().unwrap());
    assert!(blue.local[0].device.len() <= 15 && blue.local[0].device.starts_with('p'));
    assert_eq!(blue.remote, vec![RemotePort { mac: [2, 0x7e, 10, 0, 2, 7], ip: "10.0.2.7".parse().unwrap(), vtep: "192.0.2.2".parse().unwrap() }]);
    assert_eq!(plan.problems.len(), 1, "h9 has no tunnel address: {:?}", plan.problems);

    let h2 = build(&layout, &items, &nodes, &this("h2"));
    assert_eq!(h2.vpcs.keys().copied().collect::<Vec<_>>(), vec![5000, 6000]);
    assert!(h2.vpcs[&6000].remote.is_empty(), "green's ports are all on h2");
}

#[test]
fn device_names_are_stable_short_and_distinct() {
    let a = device_name("/photoncloud/prismnet/r/acme/web/vpcs.subnets.ports/v/s/p1");
    let b = device_name("/photoncloud/prismnet/r/acme/web/vpcs.subnets.ports/v/s/p2");
    assert_ne!(a, b);
    assert_eq!(a, device_name("/photoncloud/prismnet/r/acme/web/vpcs.subnets.ports/v/s/p1"));
    assert_eq!(a.len(), 11);
}

#[test]
fn a_way_out_is_planned_where_a_routed_subnet_or_a_floating_ips_port_is_and_only_with_an_external_interface() {
    let layout = crate::model::layout();
    let mut items = BTreeMap::new();
    put(&mut items, "vpcs/blue", json!({"cidr": "10.0.0.0/16", "vni": 5000}));
    put(&mut items, "vpcs/green", json!({"cidr": "10.0.0.0/16", "vni": 6000}));
    put(&mut items, "vpcs.subnets/blue/a", json!({"cidr": "10.0.1.0/24", "gateway": "10.0.1.1"}));
    put(&mut items, "vpcs.subnets/blue/b", json!({"cidr": "10.0.2.0/24", "gateway": "10.0.2.1"}));
    put(&mut items, "vpcs.subnets/green/a", json!({"cidr": "10.0.1.0/24", "gateway": "10.0.1.1"}));
    put(&mut items, "vpcs.subnets.ports/blue/a/m1", port("h1", "10.0.1.5", "02:7e:0a:00:01:05"));
    put(&mut items, "vpcs.subnets.ports/green/a/m2", port("h1", "10.0.1.5", "02:7e:0a:00:01:05"));
    put(&mut items, "vpcs.routers/blue/out", json!({"subnets": ["a"], "snat": true}));
    put(&mut items, "floatingips/f1", json!({"address": "203.0.113.5", "port": {"vpc": "green", "subnet": "a", "port": "m2"}}));
    let nodes: BTreeMap<String, Ipv4Addr> = [("h1".to_string(), "192.0.2.1".parse().unwrap())].into();
    let with = |external| build(&layout, &items, &nodes, &ThisNode { name: "h1".into(), underlay_mtu: 1500, external, naming: None, dns_servers: Vec::new() });

    let plan = with(true);
    let blue = plan.vpcs[&5000].external.clone().expect("blue routes subnet a out");
    assert_eq!(blue.snat, vec!["10.0.1.0/24".parse::<Ipv4Net>().unwrap()]);
    assert!(blue.floating.is_empty());
    let green = plan.vpcs[&6000].external.clone().expect("green's port has a floating IP");
    assert_eq!(green.floating, vec![("203.0.113.5".parse().unwrap(), "10.0.1.5".parse().unwrap())]);
    assert!(green.snat.is_empty());
    assert_ne!(blue.transit, green.transit, "transit addresses are unique on a node");
    assert!(crate::dataplane::plan::TRANSIT.contains(&blue.transit));
    assert!(with(false).vpcs.values().all(|v| v.external.is_none()), "no external interface, no way out");
}

#[test]
fn subnets_get_their_own_dns_servers_else_the_nodes_and_with_names_their_domain() {
    let layout = crate::model::layout();
    let mut items = BTreeMap::new();
    put(&mut items, "vpcs/blue", json!({"cidr": "10.0.0.0/16", "vni": 5000}));
    put(&mut items, "vpcs.subnets/blue/a", json!({"cidr": "10.0.1.0/24", "gateway": "10.0.1.1", "dns_servers": ["10.0.0.2"]}));
    put(&mut items, "vpcs.subnets/blue/b", json!({"cidr": "10.0.2.0/24", "gateway": "10.0.2.1"}));
    put(&mut items, "vpcs.subnets.ports/blue/a/m1", port("h1", "10.0.1.5", "02:7e:0a:00:01:05"));
    let this = ThisNode {
        name: "h1".into(),
        underlay_mtu: 1500,
        external: false,
        naming: Some(crate::dns::Naming::new("photon.internal").unwrap()),
        dns_servers: vec!["192.0.2.53".parse().unwrap()],
    };
    let plan = build(&layout, &items, &BTreeMap::new(), &this);
    let subnets = &plan.vpcs[&5000].subnets;
    assert_eq!(subnets[0].dns_servers, vec!["10.0.0.2".parse::<Ipv4Addr>().unwrap()]);
    assert_eq!(subnets[1].dns_servers, vec!["192.0.2.53".parse::<Ipv4Addr>().unwrap()]);
    assert_eq!(subnets[1].domain.as_deref(), Some("b.blue.web.acme.photon.internal"));
    let unnamed = build(&layout, &items, &BTreeMap::new(), &ThisNode { naming: None, ..this });
    assert_eq!(unnamed.vpcs[&5000].subnets[1].domain, None);
}
