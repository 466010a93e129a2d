//! A `Ruleset` as nftables JSON transactions: the whole of it (its tables replaced: add,
//! delete, add again), or the difference from the one applied before when only ports, rules
//! or members changed (chains written or flushed and rewritten, map and set elements added and
//! deleted), so a change costs what changed, not the size of the VPC. Either is one
//! transaction: no packet sees it half done.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{table_of, Ruleset};

fn chain_ref(family: &str, name: &str) -> Value {
    json!({"family": family, "table": table_of(family), "name": name})
}

fn add_rules(family: &str, name: &str, rules: &[Value], out: &mut Vec<Value>) {
    for expr in rules {
        out.push(json!({"add": {"rule": {"family": family, "table": table_of(family), "chain": name, "expr": expr}}}));
    }
}

fn set_ref(name: &str, elements: Option<&BTreeSet<String>>) -> Value {
    let mut set = json!({"family": "inet", "table": super::TABLE, "name": name, "type": "ipv4_addr"});
    if let Some(elements) = elements.filter(|e| !e.is_empty()) {
        set["elem"] = json!(elements);
    }
    set
}

fn elements(family: &str, map: &str, elem: Vec<Value>) -> Value {
    json!({"element": {"family": family, "table": table_of(family), "name": map, "elem": elem}})
}

fn map_element(key: &str, chain: &str) -> Value {
    json!([key, {"jump": {"target": chain}}])
}

impl Ruleset {
    /// The transaction that makes the tables exactly this, whatever was there.
    pub fn full(&self) -> Value {
        let mut out = self.skeleton.clone();
        for (name, members) in &self.sets {
            out.push(json!({"add": {"set": set_ref(name, Some(members))}}));
        }
        for ((family, name), rules) in &self.chains {
            out.push(json!({"add": {"chain": chain_ref(family, name)}}));
            add_rules(family, name, rules, &mut out);
        }
        for ((family, map), entries) in &self.maps {
            if !entries.is_empty() {
                let elem = entries.iter().map(|(k, c)| map_element(k, c)).collect();
                out.push(json!({"add": elements(family, map, elem)}));
            }
        }
        json!({"nftables": out})
    }

    /// The transaction from `old` (applied before) to this, or None when the tables themselves
    /// differ (then `full`). An empty list: nothing to do.
    pub fn diff(&self, old: &Ruleset) -> Option<Vec<Value>> {
        if self.skeleton != old.skeleton {
            return None;
        }
        let mut out = Vec::new();
        // Sets first: rules written below may name them.
        for (name, members) in &self.sets {
            match old.sets.get(name) {
                None => out.push(json!({"add": {"set": set_ref(name, Some(members))}})),
                Some(before) => {
                    let added: Vec<&String> = members.difference(before).collect();
                    if !added.is_empty() {
                        out.push(json!({"add": {"element": {"family": "inet", "table": super::TABLE, "name": name, "elem": added}}}));
                    }
                }
            }
        }
        for (key @ (family, name), rules) in &self.chains {
            match old.chains.get(key) {
                None => out.push(json!({"add": {"chain": chain_ref(family, name)}})),
                Some(before) if before == rules => continue,
                Some(_) => out.push(json!({"flush": {"chain": chain_ref(family, name)}})),
            }
            add_rules(family, name, rules, &mut out);
        }
        let empty = BTreeMap::new();
        for (key @ (family, map), entries) in &self.maps {
            let before = old.maps.get(key).unwrap_or(&empty);
            let gone: Vec<Value> =
                before.iter().filter(|(k, c)| entries.get(*k) != Some(*c)).map(|(k, _)| json!(k)).collect();
            if !gone.is_empty() {
                out.push(json!({"delete": elements(family, map, gone)}));
            }
            let new: Vec<Value> =
                entries.iter().filter(|(k, c)| before.get(*k) != Some(*c)).map(|(k, c)| map_element(k, c)).collect();
            if !new.is_empty() {
                out.push(json!({"add": elements(family, map, new)}));
            }
        }
        // What nothing refers to any more goes last.
        for key @ (family, name) in old.chains.keys() {
            if !self.chains.contains_key(key) {
                out.push(json!({"delete": {"chain": chain_ref(family, name)}}));
            }
        }
        for (name, before) in &old.sets {
            match self.sets.get(name) {
                None => out.push(json!({"delete": {"set": set_ref(name, None)}})),
                Some(members) => {
                    let removed: Vec<&String> = before.difference(members).collect();
                    if !removed.is_empty() {
                        out.push(json!({"delete": {"element": {"family": "inet", "table": super::TABLE, "name": name, "elem": removed}}}));
                    }
                }
            }
        }
        Some(out)
    }
}
