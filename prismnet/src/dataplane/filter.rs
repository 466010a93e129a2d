//! Security groups and anti-spoofing as nftables rules inside a VPC's namespace. A VPC's
//! `Ruleset` is built from its plan and applied as nftables JSON with `nft -j -f -`, each time
//! in one transaction (`transaction.rs`): the first time, or when the tables' shape changes,
//! as a whole (the tables replaced atomically); otherwise only what changed. Connection
//! tracking is untouched either way, so established flows carry on.
//!
//! Up to three tables per VPC namespace, each only while something needs it:
//! - `bridge prismnet_l2`: each filtered local port may send only from its own MAC and address
//!   (DHCP's 0.0.0.0 excepted) and only IPv4 and ARP (a map from the port's device to its
//!   chain). This makes addresses trustworthy, so
//! - `inet prismnet` can filter by address: bridged traffic passes the inet forward hook
//!   (br_netfilter, on by default in every namespace), as does traffic routed by the gateway.
//!   Replies of tracked flows pass first; then a packet from a local port runs its egress chain
//!   (allowed: back to the forward chain; no egress rule in any of its groups: everything out is
//!   allowed) and a packet to a local port its ingress chain (allowed by a rule, else dropped),
//!   both found through maps keyed by address. Remote groups are sets of their members'
//!   addresses, kept current as ports come and go.
//! - `ip prismnet_nat`: the way out (routers' SNAT, floating IPs), see `uplink.rs`.
//!
//! Each node filters for its own ports only: the sender's node applies egress, the receiver's
//! ingress. A VPC whose ports here are all unfiltered and which has no way out has no tables,
//! and so no connection tracking on its path.

mod nft;
mod transaction;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::dataplane::plan::{LocalPort, VpcPlan};
use crate::model::port::format_mac;
use crate::model::security_group::{Direction, Protocol, RuleSpec};

pub use nft::{apply, apply_here, tables as listed_tables};

pub const TABLE: &str = "prismnet";
pub const L2_TABLE: &str = "prismnet_l2";
pub const NAT_TABLE: &str = "prismnet_nat";
/// The VPC's end of its uplink to the node (`uplink.rs`).
pub const UPLINK: &str = "up0";

/// What a VPC's tables hold on this node, in the parts that change independently.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ruleset {
    /// The tables and what changes only with their shape: base chains, maps (empty), the
    /// forward chain's rules and the NAT rules. Replaced whole when it changes.
    skeleton: Vec<Value>,
    /// Each filtered port's chains, by (family, chain): their rules (expression lists).
    chains: BTreeMap<(String, String), Vec<Value>>,
    /// Remote groups: set name to member addresses.
    sets: BTreeMap<String, BTreeSet<String>>,
    /// Verdict maps, by (family, map): key (address or device) to the chain it jumps to.
    maps: BTreeMap<(String, String), BTreeMap<String, String>>,
}

/// The table PrismNET keeps per family.
fn table_of(family: &str) -> &'static str {
    match family {
        "bridge" => L2_TABLE,
        "ip" => NAT_TABLE,
        _ => TABLE,
    }
}

fn set_name(group: &str) -> String {
    // Group names are DNS labels: '-' to '_' keeps them distinct and an nft identifier.
    format!("g_{}", group.replace('-', "_"))
}

fn table(family: &str, name: &str) -> Value {
    json!({"table": {"family": family, "name": name}})
}

fn rule(family: &str, table: &str, chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": family, "table": table, "chain": chain, "expr": expr}}})
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

fn base_chain(family: &str, name: &str, kind: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {"family": family, "table": table_of(family), "name": name, "type": kind, "hook": hook, "prio": prio, "policy": "accept"}}})
}

fn verdict_map(family: &str, name: &str, key: &str) -> Value {
    json!({"add": {"map": {"family": family, "table": table_of(family), "name": name, "type": key, "map": "verdict"}}})
}

/// The expressions a rule's match is made of; `other` is the far end's address field
/// (`saddr` for ingress, `daddr` for egress).
fn rule_match(spec: &RuleSpec, other: &str) -> Vec<Value> {
    let mut expr = Vec::new();
    let proto = match spec.protocol {
        Protocol::Any => None,
        Protocol::Tcp => Some("tcp"),
        Protocol::Udp => Some("udp"),
        Protocol::Icmp => Some("icmp"),
    };
    if let Some(proto) = proto {
        expr.push(matches("==", json!({"meta": {"key": "l4proto"}}), json!(proto)));
    }
    if let Some((min, max)) = spec.ports() {
        // The service's port: the first packet's destination either way (ingress: this
        // port's; egress: the far end's).
        let right = if min == max { json!(min) } else { json!({"range": [min, max]}) };
        expr.push(matches("==", payload("th", "dport"), right));
    }
    if let Some(cidr) = spec.remote_cidr {
        let right = if cidr.prefix_len() == 32 {
            json!(cidr.addr().to_string())
        } else {
            json!({"prefix": {"addr": cidr.network().to_string(), "len": cidr.prefix_len()}})
        };
        expr.push(matches("==", payload("ip", other), right));
    }
    if let Some(group) = &spec.remote_group {
        expr.push(matches("==", payload("ip", other), json!(format!("@{}", set_name(group)))));
    }
    expr
}

/// The anti-spoofing rules of one port.
fn spoof_rules(port: &LocalPort) -> Vec<Value> {
    let ip = port.ip.to_string();
    vec![
        json!([matches("!=", payload("ether", "saddr"), json!(format_mac(port.mac))), {"drop": null}]),
        json!([
            matches("==", payload("ether", "type"), json!("arp")),
            matches("!=", payload("arp", "saddr ip"), json!({"set": ["0.0.0.0", ip]})),
            {"drop": null}
        ]),
        // A DHCP client asks before it has an address.
        json!([
            matches("==", payload("ether", "type"), json!("ip")),
            matches("==", payload("ip", "saddr"), json!("0.0.0.0")),
            matches("==", payload("udp", "dport"), json!(67)),
            {"return": null}
        ]),
        json!([matches("==", payload("ether", "type"), json!("ip")), matches("!=", payload("ip", "saddr"), json!(ip)), {"drop": null}]),
        json!([matches("!=", payload("ether", "type"), json!({"set": ["ip", "arp"]})), {"drop": null}]),
    ]
}

impl Ruleset {
    /// The rule set of a VPC on this node.
    pub fn build(vpc: &VpcPlan) -> Self {
        let mut rules = Ruleset::default();
        let filtered: Vec<&LocalPort> = vpc.local.iter().filter(|p| p.port_security).collect();
        let external = vpc.external.is_some();
        let out = &mut rules.skeleton;
        for (family, name, wanted) in [("inet", TABLE, !filtered.is_empty() || external), ("bridge", L2_TABLE, !filtered.is_empty()), ("ip", NAT_TABLE, external)] {
            // add + delete (+ add): the table is replaced, or removed, whether it existed or not.
            out.push(json!({"add": table(family, name)}));
            out.push(json!({"delete": table(family, name)}));
            if wanted {
                out.push(json!({"add": table(family, name)}));
            }
        }
        if filtered.is_empty() && !external {
            return rules;
        }
        let (f, t) = ("inet", TABLE);
        out.push(base_chain(f, "forward", "filter", "forward", 0));
        out.push(rule(f, t, "forward", vec![matches("in", json!({"ct": {"key": "state"}}), json!(["established", "related"])), json!({"accept": null})]));
        out.push(rule(f, t, "forward", vec![matches("in", json!({"ct": {"key": "state"}}), json!("invalid")), json!({"drop": null})]));
        nat_rules(vpc, out);
        if filtered.is_empty() {
            return rules;
        }
        out.push(verdict_map(f, "egress", "ipv4_addr"));
        out.push(verdict_map(f, "ingress", "ipv4_addr"));
        out.push(rule(f, t, "forward", vec![json!({"vmap": {"key": payload("ip", "saddr"), "data": "@egress"}})]));
        out.push(rule(f, t, "forward", vec![json!({"vmap": {"key": payload("ip", "daddr"), "data": "@ingress"}})]));
        out.push(base_chain("bridge", "prerouting", "filter", "prerouting", -200));
        out.push(verdict_map("bridge", "spoof", "ifname"));
        out.push(rule("bridge", L2_TABLE, "prerouting", vec![json!({"vmap": {"key": {"meta": {"key": "iifname"}}, "data": "@spoof"}})]));

        for group in vpc.groups.keys().chain(vpc.members.keys()) {
            let members = vpc.members.get(group).map(|m| m.iter().map(|ip| ip.to_string()).collect()).unwrap_or_default();
            rules.sets.insert(set_name(group), members);
        }
        let map = |rules: &mut Ruleset, family: &str, name: &str, key: String, chain: &str| {
            rules.maps.entry((family.to_string(), name.to_string())).or_default().insert(key, chain.to_string());
        };
        for port in filtered {
            let ip = port.ip.to_string();
            let (spoof, egress_chain, ingress_chain) =
                (format!("s_{}", port.device), format!("e_{}", port.device), format!("i_{}", port.device));
            rules.chains.insert(("bridge".into(), spoof.clone()), spoof_rules(port));
            map(&mut rules, "bridge", "spoof", port.device.clone(), &spoof);

            let specs: Vec<&RuleSpec> = port.security_groups.iter().filter_map(|g| vpc.groups.get(g)).flatten().map(|(_, s)| s).collect();
            let mut egress: Vec<Value> = Vec::new();
            for spec in specs.iter().filter(|r| r.direction == Direction::Egress) {
                let mut expr = rule_match(spec, "daddr");
                expr.push(json!({"return": null}));
                egress.push(json!(expr));
            }
            // No egress rule: everything out is allowed.
            egress.push(if egress.is_empty() { json!([{"return": null}]) } else { json!([{"drop": null}]) });
            let mut ingress: Vec<Value> = Vec::new();
            for spec in specs.iter().filter(|r| r.direction == Direction::Ingress) {
                let mut expr = rule_match(spec, "saddr");
                expr.push(json!({"accept": null}));
                ingress.push(json!(expr));
            }
            ingress.push(json!([{"drop": null}]));
            rules.chains.insert(("inet".into(), egress_chain.clone()), egress);
            rules.chains.insert(("inet".into(), ingress_chain.clone()), ingress);
            map(&mut rules, "inet", "egress", ip.clone(), &egress_chain);
            map(&mut rules, "inet", "ingress", ip, &ingress_chain);
        }
        rules
    }

    /// How many rules it holds (for metrics and logs).
    pub fn rule_count(&self) -> usize {
        let skeleton = self.skeleton.iter().filter(|c| c["add"]["rule"].is_object()).count();
        skeleton + self.chains.values().map(Vec::len).sum::<usize>()
    }

    /// The tables it keeps (those its skeleton adds back after deleting).
    pub fn tables(&self) -> Vec<String> {
        let mut added: Vec<String> = Vec::new();
        let mut kept = Vec::new();
        for command in &self.skeleton {
            if let Some(name) = command["add"]["table"]["name"].as_str() {
                if added.iter().any(|a| a == name) {
                    kept.push(name.to_string());
                }
                added.push(name.to_string());
            }
        }
        kept.sort();
        kept
    }
}

/// The way out: the routed subnets' traffic translated to the transit address, each floating
/// IP translated to its port both ways; nothing else leaves by the uplink.
fn nat_rules(vpc: &VpcPlan, out: &mut Vec<Value>) {
    let Some(external) = &vpc.external else { return };
    let (f, t) = ("ip", NAT_TABLE);
    out.push(json!({"add": {"chain": {"family": f, "table": t, "name": "prerouting", "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}}));
    out.push(json!({"add": {"chain": {"family": f, "table": t, "name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}));
    let from_uplink = || matches("==", json!({"meta": {"key": "iifname"}}), json!(UPLINK));
    let to_uplink = || matches("==", json!({"meta": {"key": "oifname"}}), json!(UPLINK));
    let mut allowed = Vec::new();
    for (floating, port) in &external.floating {
        out.push(rule(f, t, "prerouting", vec![from_uplink(), matches("==", payload("ip", "daddr"), json!(floating.to_string())), json!({"dnat": {"addr": port.to_string()}})]));
        out.push(rule(f, t, "postrouting", vec![to_uplink(), matches("==", payload("ip", "saddr"), json!(port.to_string())), json!({"snat": {"addr": floating.to_string()}})]));
        allowed.push(json!(port.to_string()));
    }
    for subnet in &external.snat {
        let prefix = json!({"prefix": {"addr": subnet.network().to_string(), "len": subnet.prefix_len()}});
        out.push(rule(f, t, "postrouting", vec![to_uplink(), matches("==", payload("ip", "saddr"), prefix.clone()), json!({"snat": {"addr": external.transit.to_string()}})]));
        allowed.push(prefix);
    }
    // Subnets no router routes, ports with no floating IP: not out by the uplink.
    out.push(rule("inet", TABLE, "forward", vec![to_uplink(), matches("!=", payload("ip", "saddr"), json!({"set": allowed})), json!({"drop": null})]));
}

/// The node's own rule: what leaves the external interface from a transit address leaves from
/// the node's address (the second translation of a routed subnet's traffic).
pub fn host_ruleset(interface: &str) -> Value {
    let (f, t) = ("ip", "prismnet_host");
    let transit = crate::dataplane::plan::TRANSIT;
    json!({"nftables": [
        {"add": table(f, t)},
        {"delete": table(f, t)},
        {"add": table(f, t)},
        {"add": {"chain": {"family": f, "table": t, "name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
        rule(f, t, "postrouting", vec![
            matches("==", json!({"meta": {"key": "oifname"}}), json!(interface)),
            matches("==", payload("ip", "saddr"), json!({"prefix": {"addr": transit.network().to_string(), "len": transit.prefix_len()}})),
            json!({"masquerade": null}),
        ]),
    ]})
}

#[cfg(test)]
mod tests;
