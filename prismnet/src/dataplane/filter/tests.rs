//! The rule set a VPC plan becomes: its shape, checked without a kernel (the overlay tests
//! check its effect).

use super::*;
use crate::dataplane::plan::{LocalPort, VpcPlan};
use crate::model::port::{Binding, Device};
use photon_resource::Owner;
use std::collections::BTreeMap;

fn rule_spec(json: serde_json::Value) -> RuleSpec {
    serde_json::from_value(json).unwrap()
}

fn vpc() -> VpcPlan {
    let port = |device: &str, ip: &str, groups: &[&str], security: bool| LocalPort {
        key: format!("k/{device}"),
        device: device.into(),
        mac: [2, 0x7e, 10, 0, 1, 10],
        ip: ip.parse().unwrap(),
        subnet: "10.0.1.0/24".parse().unwrap(),
        gateway: "10.0.1.1".parse().unwrap(),
        binding: Binding { node: "n".into(), device: Device::Veth, netns: Some("m".into()), ifname: None, configure: false },
        security_groups: groups.iter().map(|g| g.to_string()).collect(),
        port_security: security,
    };
    let mut groups = BTreeMap::new();
    groups.insert(
        "web".to_string(),
        vec![
            ("http".to_string(), rule_spec(json!({"direction": "ingress", "protocol": "tcp", "port_min": 80, "port_max": 81, "remote_cidr": "10.0.0.0/8"}))),
            ("peers".to_string(), rule_spec(json!({"direction": "ingress", "remote_group": "web-peers"}))),
        ],
    );
    groups.insert("locked".to_string(), vec![("dns".to_string(), rule_spec(json!({"direction": "egress", "protocol": "udp", "port_min": 53})))]);
    groups.insert("web-peers".to_string(), Vec::new());
    let mut members = BTreeMap::new();
    members.insert("web".to_string(), ["10.0.1.10".parse().unwrap(), "10.0.2.7".parse().unwrap()].into());
    VpcPlan {
        vni: 5000,
        owner: Owner { org: "acme".into(), project: "web".into() },
        name: "blue".into(),
        gateway_mac: [2, 0x7f, 0, 0x13, 0x88, 1],
        mtu: 1450,
        subnets: Vec::new(),
        local: vec![port("p0000000001", "10.0.1.10", &["web"], true), port("p0000000002", "10.0.1.11", &["locked"], true), port("p0000000003", "10.0.1.12", &[], false)],
        remote: Vec::new(),
        groups,
        members,
        external: None,
    }
}

fn rules_of<'a>(set: &'a Value, chain: &str) -> Vec<&'a Value> {
    set["nftables"].as_array().unwrap().iter().filter(|c| c["add"]["rule"]["chain"] == chain).map(|c| &c["add"]["rule"]["expr"]).collect()
}

#[test]
fn a_port_gets_its_groups_rules_default_deny_in_and_its_own_addresses_only() {
    let rules = Ruleset::build(&vpc());
    let set = rules.full();
    let text = set.to_string();
    // Replaced atomically: both tables added, deleted and added first.
    let ops: Vec<&Value> = set["nftables"].as_array().unwrap().iter().take(6).collect();
    assert!(ops[1]["delete"]["table"]["name"] == TABLE && ops[4]["delete"]["table"]["name"] == L2_TABLE, "{text}");
    // Tracked replies first.
    let forward = rules_of(&set, "forward");
    assert_eq!(forward[0][0]["match"]["right"], json!(["established", "related"]));
    // Port 1: ingress from 10/8 to TCP 80-81, and from the peers' set; then drop. Egress open.
    let ingress = rules_of(&set, "i_p0000000001");
    assert_eq!(ingress.len(), 3);
    assert_eq!(ingress[0][1]["match"]["right"], json!({"range": [80, 81]}));
    assert_eq!(ingress[0][2]["match"]["right"], json!({"prefix": {"addr": "10.0.0.0", "len": 8}}));
    assert_eq!(ingress[1][0]["match"]["right"], "@g_web_peers");
    assert_eq!(ingress[2], &json!([{"drop": null}]));
    assert_eq!(rules_of(&set, "e_p0000000001"), vec![&json!([{"return": null}])]);
    // Port 2: DNS out only.
    let egress = rules_of(&set, "e_p0000000002");
    assert_eq!(egress.len(), 2);
    assert_eq!(egress[0][1]["match"]["right"], 53);
    assert_eq!(egress[1], &json!([{"drop": null}]));
    // Port 3 turned port security off: no chain of its own.
    assert!(!text.contains("p0000000003"), "{text}");
    // Sets: members of web; web-peers empty but present for the rule that names it.
    assert!(text.contains(r#""elem":["10.0.1.10","10.0.2.7"]"#) && text.contains(r#""name":"g_web_peers""#), "{text}");
    // Anti-spoofing: its own MAC, its own address (and DHCP's 0.0.0.0), IPv4 and ARP only.
    let spoof = rules_of(&set, "s_p0000000001");
    assert_eq!(spoof[0][0]["match"]["right"], "02:7e:0a:00:01:0a");
    assert_eq!(spoof[1][1]["match"]["right"], json!({"set": ["0.0.0.0", "10.0.1.10"]}));
    assert_eq!(spoof[3][1]["match"]["right"], "10.0.1.10");
    // Each port's chains are found by maps: its address (both ways) and its device.
    assert!(text.contains(r#"["10.0.1.10",{"jump":{"target":"e_p0000000001"}}]"#), "{text}");
    assert!(text.contains(r#"["p0000000001",{"jump":{"target":"s_p0000000001"}}]"#), "{text}");
    // forward 2 + 2 maps, prerouting 1 map, port 1: 3 in + 1 out, port 2: 1 in + 2 out, 5
    // anti-spoofing rules each.
    assert_eq!(rules.rule_count(), 4 + 1 + 4 + 3 + 10);
}

#[test]
fn a_way_out_translates_routed_subnets_to_the_transit_address_and_floating_ips_both_ways() {
    use crate::dataplane::plan::ExternalPlan;
    let mut plan = vpc();
    assert!(!Ruleset::build(&plan).full().to_string().contains("dnat"), "no NAT without a way out");
    assert_eq!(Ruleset::build(&plan).tables(), vec![TABLE, L2_TABLE], "the NAT table is only deleted");
    plan.external = Some(ExternalPlan {
        transit: "100.64.1.2".parse().unwrap(),
        snat: vec!["10.0.1.0/24".parse().unwrap()],
        floating: vec![("203.0.113.5".parse().unwrap(), "10.0.1.10".parse().unwrap())],
    });
    let set = Ruleset::build(&plan).full();
    let pre = rules_of(&set, "prerouting");
    let dnat = pre.iter().find(|r| r.to_string().contains("dnat")).expect("a DNAT rule");
    assert_eq!(dnat[1]["match"]["right"], "203.0.113.5");
    assert_eq!(dnat[2]["dnat"]["addr"], "10.0.1.10");
    let post = rules_of(&set, "postrouting");
    assert_eq!(post.len(), 2);
    assert_eq!(post[0][2]["snat"]["addr"], "203.0.113.5", "the port leaves from its floating IP");
    assert_eq!(post[1][2]["snat"]["addr"], "100.64.1.2", "the subnet from the transit address");
    let out = rules_of(&set, "forward").into_iter().find(|r| r[0]["match"]["right"] == UPLINK).expect("a rule for the uplink");
    assert_eq!(out[1]["match"]["right"], json!({"set": ["10.0.1.10", {"prefix": {"addr": "10.0.1.0", "len": 24}}]}));
    let host = host_ruleset("eth0").to_string();
    assert!(host.contains("masquerade") && host.contains(r#""addr":"100.64.0.0","len":10"#), "{host}");
}

#[test]
fn a_vpc_with_only_unfiltered_ports_here_and_no_way_out_has_no_tables() {
    let mut plan = vpc();
    plan.local.retain(|p| !p.port_security);
    let rules = Ruleset::build(&plan);
    assert!(rules.tables().is_empty(), "{rules:?}");
    assert_eq!(rules.rule_count(), 0);
}

#[test]
fn a_change_of_ports_rules_or_members_is_applied_as_just_that_change() {
    let before = vpc();
    let old = Ruleset::build(&before);

    // A new port: its chains and map entries, its address in the set; no table replaced.
    let mut after = before.clone();
    let mut port = after.local[0].clone();
    port.device = "p0000000004".into();
    port.ip = "10.0.1.20".parse().unwrap();
    after.local.push(port);
    after.members.get_mut("web").unwrap().insert("10.0.1.20".parse().unwrap());
    let diff = Ruleset::build(&after).diff(&old).expect("the same tables");
    let text = serde_json::to_string(&diff).unwrap();
    assert!(!text.contains(r#""delete":{"table""#) && !text.contains("flush"), "{text}");
    assert!(diff.iter().any(|c| c["add"]["chain"]["name"] == "i_p0000000004"), "{text}");
    assert!(text.contains(r#""elem":["10.0.1.20"]"#), "the new member: {text}");
    assert!(text.contains(r#"["10.0.1.20",{"jump":{"target":"e_p0000000004"}}]"#), "{text}");
    assert_eq!(diff.iter().filter(|c| c["add"]["rule"].is_object()).count(), 9, "its 9 rules, nothing else: {text}");

    // Back: its chains deleted after its map entries, its member deleted.
    let back = old.diff(&Ruleset::build(&after)).expect("the same tables");
    let text = serde_json::to_string(&back).unwrap();
    let entry = back.iter().position(|c| c["delete"]["element"]["name"] == "egress").expect("the map entry goes");
    let chain = back.iter().position(|c| c["delete"]["chain"]["name"] == "e_p0000000004").expect("the chain goes");
    assert!(entry < chain, "entries before their chain: {text}");

    // A group's rule changed: only its ports' chains are rewritten.
    let mut changed = before.clone();
    changed.groups.get_mut("locked").unwrap()[0].1.port_min = Some(5353);
    let diff = Ruleset::build(&changed).diff(&old).expect("the same tables");
    let text = serde_json::to_string(&diff).unwrap();
    assert!(diff.iter().any(|c| c["flush"]["chain"]["name"] == "e_p0000000002") && !text.contains("p0000000001"), "{text}");

    // Nothing changed: nothing to do. The tables' shape changed (a way out): no diff.
    assert_eq!(old.diff(&old), Some(Vec::new()));
    let mut routed = before;
    routed.external = Some(crate::dataplane::plan::ExternalPlan::default());
    assert!(Ruleset::build(&routed).diff(&old).is_none());
}
