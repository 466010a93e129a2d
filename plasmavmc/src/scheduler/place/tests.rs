//! The placement decision on its own: overcommit, anti-affinity, strategies and the reasons.

use std::collections::BTreeMap;

use super::*;
use crate::model::status::Grant;
use crate::nodes::NodeRecord;
use crate::scheduler::allocations::Held;

fn node(name: &str, vcpus: u32, memory_mib: u64) -> (String, NodeView) {
    let record =
        NodeRecord { vcpus, memory_mib, architecture: "x86_64".into(), labels: BTreeMap::new(), accel: "tcg".into(), api: None };
    (name.to_string(), NodeView { name: name.into(), record, present: true, member: None })
}

fn used(entries: &[(&str, u32, u64, Option<&str>)]) -> Allocation {
    let vms = entries
        .iter()
        .map(|(uid, vcpus, memory_mib, group)| {
            let held = Held {
                key: format!("k/{uid}"),
                grant: Grant { vcpus: *vcpus, memory_mib: *memory_mib },
                group: group.map(str::to_string),
                ports: Vec::new(),
                attachments: Vec::new(),
            };
            (uid.to_string(), held)
        })
        .collect();
    Allocation { vms }
}

const SPREAD: Policy = Policy { strategy: Strategy::Spread, cpu_overcommit: 1.0, memory_overcommit: 1.0 };

fn ask(vcpus: u32, memory_mib: u64, selector: &BTreeMap<String, String>) -> Request<'_> {
    Request { vcpus, memory_mib, architecture: "x86_64", selector, group: None }
}

#[test]
fn spread_takes_the_emptiest_and_pack_the_fullest_that_fits() {
    let nodes: BTreeMap<_, _> = [node("a", 4, 4096), node("b", 4, 4096)].into();
    let allocations: BTreeMap<_, _> = [("a".to_string(), used(&[("x", 1, 1024, None)]))].into();
    let none = BTreeMap::new();
    assert_eq!(choose(&nodes, &allocations, &ask(1, 512, &none), &SPREAD).as_deref(), Ok("b"));
    let pack = Policy { strategy: Strategy::Pack, ..SPREAD };
    assert_eq!(choose(&nodes, &allocations, &ask(1, 512, &none), &pack).as_deref(), Ok("a"));
}

#[test]
fn a_full_node_is_never_chosen_and_the_reason_names_each_node() {
    let (mut a, b) = (node("a", 2, 1024), node("b", 2, 1024));
    a.1.present = false;
    let nodes: BTreeMap<_, _> = [a, b].into();
    let allocations: BTreeMap<_, _> = [("b".to_string(), used(&[("x", 2, 512, None)]))].into();
    let none = BTreeMap::new();
    let why = choose(&nodes, &allocations, &ask(1, 256, &none), &SPREAD).unwrap_err();
    assert!(why.contains("a: its agent is not running"), "{why}");
    assert!(why.contains("b: 0 vCPUs free, needs 1"), "{why}");
    let overcommit = Policy { cpu_overcommit: 2.0, ..SPREAD };
    assert_eq!(choose(&nodes, &allocations, &ask(1, 256, &none), &overcommit).as_deref(), Ok("b"));
    let why = choose(&nodes, &allocations, &ask(1, 768, &none), &overcommit).unwrap_err();
    assert!(why.contains("b: 512 MiB free, needs 768"), "{why}");
}

#[test]
fn anti_affinity_labels_and_membership_filter() {
    let (a, mut b) = (node("a", 8, 8192), node("b", 8, 8192));
    b.1.record.labels.insert("disk".into(), "ssd".into());
    let mut nodes: BTreeMap<_, _> = [a, b].into();
    let allocations: BTreeMap<_, _> = [("b".to_string(), used(&[("x", 1, 512, Some("acme/web/db"))]))].into();
    let ssd: BTreeMap<_, _> = [("disk".to_string(), "ssd".to_string())].into();
    assert_eq!(choose(&nodes, &allocations, &ask(1, 512, &ssd), &SPREAD).as_deref(), Ok("b"));
    let mut grouped = ask(1, 512, &ssd);
    grouped.group = Some("acme/web/db".into());
    let why = choose(&nodes, &allocations, &grouped, &SPREAD).unwrap_err();
    assert!(
        why.contains("a: lacks label disk=ssd") && why.contains("b: already runs a VM of anti-affinity group db"),
        "{why}"
    );
    if let Some(b) = nodes.get_mut("b") {
        b.member = Some("suspect".into());
    }
    let why = choose(&nodes, &BTreeMap::new(), &ask(1, 512, &ssd), &SPREAD).unwrap_err();
    assert!(why.contains("b: suspect in the membership table"), "{why}");
}
