//! Security groups and anti-spoofing as nftables rules inside a VPC's namespace, written as
//! nftables JSON and applied with `nft -j -f -` in one transaction (the old tables replaced
//! atomically, so no packet sees a half-made rule set; connection tracking is untouched, so
//! established flows carry on).
//!
//! Two tables per VPC namespace:
//! - `bridge prismnet_l2`: each filtered local port may send only from its own MAC and address
//!   (DHCP's 0.0.0.0 excepted) and only IPv4 and ARP. This makes addresses trustworthy, so
//! - `inet prismnet` can filter by address: bridged traffic passes the inet forward hook
//!   (br_netfilter, on by default in every namespace), as does traffic routed by the gateway.
//!   Replies of tracked flows pass first; then a packet from a local port runs its egress chain
//!   (allowed: back to the forward chain; no egress rule in any of its groups: everything out is
//!   allowed) and a packet to a local port its ingress chain (allowed by a rule, else dropped).
//!   Remote groups are sets of their members' addresses, kept current as ports come and go.
//!
//! Each node filters for its own ports only: the sender's node applies egress, the receiver's
//! ingress.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::dataplane::netns;
use crate::dataplane::plan::{LocalPort, VpcPlan};
use crate::error::{PrismnetError, Result};
use crate::model::port::format_mac;
use crate::model::security_group::{Direction, Protocol, RuleSpec};

pub const TABLE: &str = "prismnet";
pub const L2_TABLE: &str = "prismnet_l2";
pub const NAT_TABLE: &str = "prismnet_nat";
/// The VPC's end of its uplink to the node (`vpc.rs`).
pub const UPLINK: &str = "up0";

fn set_name(group: &str) -> String {
    // Group names are DNS labels: '-' to '_' keeps them distinct and an nft identifier.
    format!("g_{}", group.replace('-', "_"))
}

fn table(family: &str, name: &str) -> Value {
    json!({"table": {"family": family, "name": name}})
}

fn chain(family: &str, table: &str, name: &str) -> Value {
    json!({"add": {"chain": {"family": family, "table": table, "name": name}}})
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

/// The anti-spoofing chain of one port.
fn spoof_rules(port: &LocalPort, chain_name: &str, out: &mut Vec<Value>) {
    let (f, t) = ("bridge", L2_TABLE);
    let ip = port.ip.to_string();
    out.push(chain(f, t, chain_name));
    out.push(rule(f, t, chain_name, vec![matches("!=", payload("ether", "saddr"), json!(format_mac(port.mac))), json!({"drop": null})]));
    out.push(rule(
        f,
        t,
        chain_name,
        vec![
            matches("==", payload("ether", "type"), json!("arp")),
            matches("!=", payload("arp", "saddr ip"), json!({"set": ["0.0.0.0", ip]})),
            json!({"drop": null}),
        ],
    ));
    // A DHCP client asks before it has an address.
    out.push(rule(
        f,
        t,
        chain_name,
        vec![
            matches("==", payload("ether", "type"), json!("ip")),
            matches("==", payload("ip", "saddr"), json!("0.0.0.0")),
            matches("==", payload("udp", "dport"), json!(67)),
            json!({"return": null}),
        ],
    ));
    out.push(rule(
        f,
        t,
        chain_name,
        vec![matches("==", payload("ether", "type"), json!("ip")), matches("!=", payload("ip", "saddr"), json!(ip)), json!({"drop": null})],
    ));
    out.push(rule(f, t, chain_name, vec![matches("!=", payload("ether", "type"), json!({"set": ["ip", "arp"]})), json!({"drop": null})]));
}

/// The whole rule set of a VPC on this node, as one nftables JSON transaction that replaces
/// the previous one.
pub fn ruleset(vpc: &VpcPlan) -> Value {
    let mut out = Vec::new();
    // Tables only where something needs them: a VPC whose ports here are all unfiltered and
    // which has no way out keeps connection tracking off its path altogether.
    let filtered = vpc.local.iter().any(|p| p.port_security);
    let external = vpc.external.is_some();
    for (family, name, wanted) in [("inet", TABLE, filtered || external), ("bridge", L2_TABLE, filtered), ("ip", NAT_TABLE, external)] {
        // add + delete (+ add): the table is replaced, or removed, whether it existed or not.
        out.push(json!({"add": table(family, name)}));
        out.push(json!({"delete": table(family, name)}));
        if wanted {
            out.push(json!({"add": table(family, name)}));
        }
    }
    if !(filtered || external) {
        return json!({"nftables": out});
    }
    let (f, t) = ("inet", TABLE);
    out.push(json!({"add": {"chain": {"family": f, "table": t, "name": "forward", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}}));
    if filtered {
        out.push(json!({"add": {"chain": {"family": "bridge", "table": L2_TABLE, "name": "prerouting", "type": "filter", "hook": "prerouting", "prio": -200, "policy": "accept"}}}));
    }
    out.push(rule(f, t, "forward", vec![matches("in", json!({"ct": {"key": "state"}}), json!(["established", "related"])), json!({"accept": null})]));
    out.push(rule(f, t, "forward", vec![matches("in", json!({"ct": {"key": "state"}}), json!("invalid")), json!({"drop": null})]));
    nat_rules(vpc, &mut out);
    for (group, members) in &vpc.members {
        let elem: Vec<String> = members.iter().map(|ip| ip.to_string()).collect();
        let mut set = json!({"family": f, "table": t, "name": set_name(group), "type": "ipv4_addr"});
        if !elem.is_empty() {
            set["elem"] = json!(elem);
        }
        out.push(json!({"add": {"set": set}}));
    }
    // Groups nobody is a member of still need their (empty) set for remote-group rules.
    for group in vpc.groups.keys().filter(|g| !vpc.members.contains_key(*g)) {
        out.push(json!({"add": {"set": {"family": f, "table": t, "name": set_name(group), "type": "ipv4_addr"}}}));
    }
    for port in vpc.local.iter().filter(|p| p.port_security) {
        let ip = port.ip.to_string();
        let spoof = format!("s_{}", port.device);
        spoof_rules(port, &spoof, &mut out);
        out.push(rule(
            "bridge",
            L2_TABLE,
            "prerouting",
            vec![matches("==", json!({"meta": {"key": "iifname"}}), json!(port.device)), json!({"jump": {"target": spoof}})],
        ));

        let rules: Vec<&RuleSpec> =
            port.security_groups.iter().filter_map(|g| vpc.groups.get(g)).flatten().map(|(_, spec)| spec).collect();
        let (egress_chain, ingress_chain) = (format!("e_{}", port.device), format!("i_{}", port.device));
        out.push(chain(f, t, &egress_chain));
        out.push(chain(f, t, &ingress_chain));
        let egress: Vec<&&RuleSpec> = rules.iter().filter(|r| r.direction == Direction::Egress).collect();
        for spec in &egress {
            let mut expr = rule_match(spec, "daddr");
            expr.push(json!({"return": null}));
            out.push(rule(f, t, &egress_chain, expr));
        }
        // No egress rule: everything out is allowed.
        out.push(rule(f, t, &egress_chain, vec![json!(if egress.is_empty() { json!({"return": null}) } else { json!({"drop": null}) })]));
        for spec in rules.iter().filter(|r| r.direction == Direction::Ingress) {
            let mut expr = rule_match(spec, "saddr");
            expr.push(json!({"accept": null}));
            out.push(rule(f, t, &ingress_chain, expr));
        }
        out.push(rule(f, t, &ingress_chain, vec![json!({"drop": null})]));
        out.push(rule(f, t, "forward", vec![matches("==", payload("ip", "saddr"), json!(ip)), json!({"jump": {"target": egress_chain}})]));
        out.push(rule(f, t, "forward", vec![matches("==", payload("ip", "daddr"), json!(ip)), json!({"jump": {"target": ingress_chain}})]));
    }
    json!({"nftables": out})
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

/// Runs `nft` in this process's own namespace (the node's).
pub fn apply_here(ruleset: &Value) -> Result<()> {
    let own = std::fs::File::open("/proc/self/ns/net").map_err(|e| PrismnetError::io("this node's namespace", e))?;
    apply(&own, ruleset)
}

/// How many rules `ruleset` holds (for metrics and logs).
pub fn rule_count(ruleset: &Value) -> usize {
    ruleset["nftables"].as_array().map(|a| a.iter().filter(|c| c["add"]["rule"].is_object()).count()).unwrap_or(0)
}

/// Runs `nft` with `args` inside `ns`, `input` on its stdin; its stdout.
fn nft(ns: &std::fs::File, args: &[&str], input: Option<&[u8]>) -> Result<String> {
    let what = format!("nft {}", args.join(" "));
    let output = netns::within(ns, || {
        // Spawned from a thread inside the VPC's namespace, nft runs there too.
        let mut child = Command::new("nft")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
            stdin.write_all(input)?;
        }
        child.wait_with_output()
    })
    .map_err(|e| PrismnetError::io(format!("{what} (is nftables installed?)"), e))?;
    if !output.status.success() {
        return Err(PrismnetError::Nft { what, message: String::from_utf8_lossy(&output.stderr).trim().to_string() });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Replaces the VPC's tables in `ns` with `ruleset`.
pub fn apply(ns: &std::fs::File, ruleset: &Value) -> Result<()> {
    nft(ns, &["-j", "-f", "-"], Some(ruleset.to_string().as_bytes())).map(|_| ())
}

/// The tables `ruleset` leaves in place (those it adds back after deleting).
pub fn tables(ruleset: &Value) -> Vec<String> {
    let mut added: Vec<String> = Vec::new();
    let mut tables = Vec::new();
    for command in ruleset["nftables"].as_array().into_iter().flatten() {
        if let Some(name) = command["add"]["table"]["name"].as_str() {
            if added.iter().any(|a| a == name) {
                tables.push(name.to_string());
            }
            added.push(name.to_string());
        }
    }
    tables
}

/// Whether the tables `ruleset` leaves in place exist in `ns` (an operator may have flushed
/// them) and no other of ours does.
pub fn present(ns: &std::fs::File, ruleset: &Value) -> Result<bool> {
    let listed = nft(ns, &["-j", "list", "tables"], None)?;
    let listing: Value = serde_json::from_str(&listed).unwrap_or(Value::Null);
    let names: Vec<&str> = listing["nftables"]
        .as_array()
        .map(|a| a.iter().filter_map(|t| t["table"]["name"].as_str()).collect())
        .unwrap_or_default();
    let mut ours: Vec<&str> = names.into_iter().filter(|n| [TABLE, L2_TABLE, NAT_TABLE].contains(n)).collect();
    ours.sort_unstable();
    let mut wanted = tables(ruleset);
    wanted.sort();
    Ok(ours == wanted)
}

#[cfg(test)]
mod tests;
