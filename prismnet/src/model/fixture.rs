//! Resources as chainfire holds them, for tests of what is worked out from them (the
//! dataplane's plan, the ports' names): all in project acme/web.

use std::collections::BTreeMap;

use serde_json::json;

/// Puts a resource at `key` (`<kinds>/<names>` under acme/web, as the layout spells it).
pub fn put(items: &mut BTreeMap<String, Vec<u8>>, key: &str, spec: serde_json::Value) {
    let name = key.rsplit('/').next().unwrap_or_default();
    let resource = json!({"metadata": {"name": name, "org": "acme", "project": "web", "uid": "u", "created_ms": 0, "updated_ms": 0, "generation": 1}, "spec": spec});
    items.insert(format!("/photoncloud/prismnet/r/acme/web/{key}"), serde_json::to_vec(&resource).unwrap_or_default());
}

/// A port's spec, bound to `node`.
pub fn port(node: &str, ip: &str, mac: &str) -> serde_json::Value {
    json!({"ip": ip, "mac": mac, "binding": {"node": node, "netns": "m"}})
}
