//! Ports' names from resources: which zones and records, and what cannot be named.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::model::fixture::{port, put};

fn naming() -> Naming {
    Naming::new("Photon.Internal.").expect("a domain")
}

#[test]
fn each_vpc_gets_a_zone_and_each_addressed_port_a_record_named_by_its_subnet() {
    let mut items = BTreeMap::new();
    put(&mut items, "vpcs/blue", json!({"cidr": "10.0.0.0/16", "vni": 5000}));
    put(&mut items, "vpcs/green", json!({"cidr": "10.0.0.0/16", "vni": 6000}));
    put(&mut items, "vpcs.subnets/blue/a", json!({"cidr": "10.0.1.0/24"}));
    put(&mut items, "vpcs.subnets.ports/blue/a/db", port("h1", "10.0.1.5", "02:7e:0a:00:01:05"));
    put(&mut items, "vpcs.subnets.ports/blue/b/db", json!({"ip": "10.0.2.5"}));
    put(&mut items, "vpcs.subnets.ports/blue/a/pending", json!({}));
    put(&mut items, "vpcs.subnets.ports/gone/a/orphan", json!({"ip": "10.9.0.5"}));
    let (zones, problems) = desired(&naming(), &crate::model::layout(), &items);
    assert!(problems.is_empty(), "{problems:?}");
    let names: Vec<&str> = zones.keys().map(String::as_str).collect();
    assert_eq!(names, ["blue.web.acme.photon.internal.", "green.web.acme.photon.internal."]);
    let blue = &zones["blue.web.acme.photon.internal."];
    let expected: BTreeMap<String, std::net::Ipv4Addr> = [
        ("db.a.blue.web.acme.photon.internal.".to_string(), "10.0.1.5".parse().unwrap()),
        ("db.b.blue.web.acme.photon.internal.".to_string(), "10.0.2.5".parse().unwrap()),
    ]
    .into();
    assert_eq!(*blue, expected, "unbound ports are named too; a port without an address is not");
    assert!(zones["green.web.acme.photon.internal."].is_empty());
}

#[test]
fn names_dns_cannot_carry_are_reported_not_made() {
    let long = "v".repeat(63);
    let mut items = BTreeMap::new();
    let naming = Naming::new(&format!("{}.{}.example", "d".repeat(55), "e".repeat(55))).expect("a domain");
    put(&mut items, "vpcs/ok", json!({"cidr": "10.0.0.0/16", "vni": 5001}));
    put(&mut items, &format!("vpcs.subnets.ports/ok/{long}/{long}"), json!({"ip": "10.0.1.5"}));
    put(&mut items, "vpcs.subnets.ports/ok/a/short", json!({"ip": "10.0.1.6"}));
    let (zones, problems) = desired(&naming, &crate::model::layout(), &items);
    let records: Vec<&String> = zones.values().flat_map(BTreeMap::keys).collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].starts_with("short.a.ok.web.acme."));
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("exceed 253"), "{problems:?}");
}

#[test]
fn the_domain_is_checked_and_vpc_zones_are_recognised() {
    for bad in ["", ".", "a..b", "-a.b", "a_b.c", &"x".repeat(130)] {
        assert!(Naming::new(bad).is_err(), "{bad:?}");
    }
    let naming = naming();
    assert_eq!(naming.apex(), "photon.internal.");
    let owner = photon_resource::Owner::new("acme", "web");
    assert_eq!(naming.subnet_domain(&owner, "blue", "a").as_deref(), Some("a.blue.web.acme.photon.internal"));
    assert!(naming.is_vpc_zone("blue.web.acme.photon.internal."));
    assert!(naming.is_vpc_zone("BLUE.web.acme.photon.internal"));
    for other in ["photon.internal.", "web.acme.photon.internal.", "x.blue.web.acme.photon.internal.", "blue.web.acme.example.", "blue.web.acmephoton.internal."] {
        assert!(!naming.is_vpc_zone(other), "{other}");
    }
}
