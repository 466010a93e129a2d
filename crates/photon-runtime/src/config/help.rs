//! The configuration reference printed by `<service>-server --help`, generated from the
//! defaults so it can never drift from the code.

use figment::providers::Serialized;
use figment::{Profile, Provider};

use super::schema;
use super::{ServiceConfig, ServiceSpec};

/// A table of every config key with its environment variable and default.
pub fn config_help<C: ServiceConfig>(spec: &ServiceSpec) -> String {
    let dict = Serialized::defaults(C::defaults(spec))
        .data()
        .ok()
        .and_then(|mut m| m.remove(&Profile::Default))
        .unwrap_or_default();
    let keys = schema::keys(&dict, spec.env_prefix);
    let mut out = format!(
        "Configuration: defaults < TOML file (--config or {}) < environment < flags.\n\
         Keys with their defaults, each overridable by its environment variable:\n\n",
        spec.config_env()
    );
    for key in &keys {
        out.push_str(&format!("  {} = {}\n      env {}\n", key.path, schema::show(&key.default), key.env));
    }
    out.push_str(
        "\nUnknown keys and badly typed values are errors that name the key. \
         `--print-config` shows the merged result.",
    );
    out
}
