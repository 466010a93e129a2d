//! The set of valid config keys, read off a service's defaults: used to map environment
//! variables to keys and to list keys in `--help`.

use figment::value::{Dict, Value};

/// One config key: its dotted path, its environment variable and its default.
#[derive(Debug, Clone)]
pub struct Key {
    pub path: String,
    pub env: String,
    pub default: Value,
}

/// Every leaf key of `defaults` (an empty table counts as a leaf, so maps are one key).
pub fn keys(defaults: &Dict, env_prefix: &str) -> Vec<Key> {
    let mut out = Vec::new();
    walk(defaults, "", env_prefix, &mut out);
    out
}

fn walk(dict: &Dict, prefix: &str, env_prefix: &str, out: &mut Vec<Key>) {
    for (name, value) in dict {
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match value {
            Value::Dict(_, inner) if !inner.is_empty() => walk(inner, &path, env_prefix, out),
            _ => out.push(Key {
                env: format!("{env_prefix}_{}", path.replace('.', "_").to_uppercase()),
                path,
                default: value.clone(),
            }),
        }
    }
}

/// Renders a default for humans: TOML-ish, `(unset)` for an absent optional value.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{c:?}"),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => n
            .to_u128()
            .map(|v| v.to_string())
            .or_else(|| n.to_i128().map(|v| v.to_string()))
            .or_else(|| n.to_f64().map(|v| v.to_string()))
            .unwrap_or_default(),
        Value::Empty(..) => "(unset)".into(),
        Value::Dict(_, d) if d.is_empty() => "{}".into(),
        Value::Dict(..) => "{...}".into(),
        Value::Array(_, a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
    }
}
