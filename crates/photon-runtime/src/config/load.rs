//! Merging the configuration: defaults < TOML file < cluster-config.json < environment < flags,
//! then one extraction whose errors name the key and where its value came from.

use std::path::Path;

use figment::error::Kind;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::schema::{self, Key};
use super::{ServiceConfig, ServiceSpec};
use crate::RuntimeError;

/// One overriding value (from the environment or a flag), named after where it came from so
/// errors can say "environment variable CHAINFIRE_SERVER_LISTEN" rather than a key path.
struct Override {
    origin: String,
    dict: Dict,
}

impl Provider for Override {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.origin.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

fn nested(path: &str, value: Value) -> Dict {
    figment::util::nest(path, value).into_dict().unwrap_or_default()
}

/// Loads `C` for `spec`. `file` is the TOML file (it must exist when given), `env` the process
/// environment, `flags` the `(key path, value)` pairs set on the command line.
pub fn load<C: ServiceConfig>(
    spec: &ServiceSpec,
    file: Option<&Path>,
    env: &[(String, String)],
    flags: &[(String, Value)],
) -> Result<C, RuntimeError> {
    load_with(spec, file, &[], env, flags)
}

/// [`load`] with the keys `--cluster-config` sets (`cluster`), which sit between the file and
/// the environment: the node's role comes from the cluster, and a unit can still point a key at
/// its credentials with an environment variable or a flag.
pub fn load_with<C: ServiceConfig>(
    spec: &ServiceSpec,
    file: Option<&Path>,
    cluster: &[(String, Value)],
    env: &[(String, String)],
    flags: &[(String, Value)],
) -> Result<C, RuntimeError> {
    let defaults = Serialized::defaults(C::defaults(spec));
    let default_dict = defaults
        .data()
        .map_err(|e| RuntimeError::Config(format!("the built-in defaults do not serialize: {e}")))?
        .remove(&Profile::Default)
        .unwrap_or_default();
    let keys = schema::keys(&default_dict, spec.env_prefix);

    let mut figment = Figment::from(defaults);
    if let Some(path) = file {
        if !path.is_file() {
            return Err(RuntimeError::Config(format!("config file {} does not exist", path.display())));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    for (path, value) in cluster {
        figment = figment.merge(Override { origin: "cluster config".into(), dict: nested(path, value.clone()) });
    }
    for provider in env_overrides(spec, &keys, env)? {
        figment = figment.merge(provider);
    }
    for (path, value) in flags {
        figment = figment.merge(Override { origin: "command line".into(), dict: nested(path, value.clone()) });
    }
    figment.extract::<C>().map_err(|e| RuntimeError::Config(describe(e)))
}

fn env_overrides(spec: &ServiceSpec, keys: &[Key], env: &[(String, String)]) -> Result<Vec<Override>, RuntimeError> {
    let prefix = format!("{}_", spec.env_prefix);
    let config_env = spec.config_env();
    let mut overrides = Vec::new();
    for (name, raw) in env {
        if !name.starts_with(&prefix) || *name == config_env {
            continue;
        }
        let Some(key) = keys.iter().find(|k| k.env == *name) else {
            let known: Vec<&str> = keys.iter().map(|k| k.env.as_str()).collect();
            return Err(RuntimeError::Config(format!(
                "unknown environment variable {name}: {prefix}* variables set config keys, and the known ones are {}, {config_env}",
                known.join(", ")
            )));
        };
        // A key whose default is a string stays a string ("8080" as a name is not a number);
        // anything else is parsed the way TOML would read it.
        let value = match key.default {
            Value::String(..) => Value::from(raw.clone()),
            _ => raw.parse::<Value>().unwrap_or_else(|never| match never {}),
        };
        overrides.push(Override { origin: format!("environment variable {name}"), dict: nested(&key.path, value) });
    }
    Ok(overrides)
}

/// One line per problem: the key, what is wrong, and which file or variable set it.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let path = e.path.join(".");
            // figment's path already ends with the offending field for unknown/missing keys.
            let join = |field: &str| {
                if path.is_empty() {
                    field.to_string()
                } else if e.path.last().is_some_and(|last| last == field) {
                    path.clone()
                } else {
                    format!("{path}.{field}")
                }
            };
            let what = match &e.kind {
                Kind::UnknownField(field, expected) => {
                    format!("unknown key `{}`; expected one of: {}", join(field), expected.join(", "))
                }
                Kind::MissingField(field) => format!("missing key `{}`", join(field)),
                kind => format!("bad value for key `{path}`: {kind}"),
            };
            let origin = e.metadata.as_ref().map(|m| match &m.source {
                Some(Source::File(file)) => file.display().to_string(),
                _ => m.name.to_string(),
            });
            match origin {
                Some(origin) => format!("{what} (set in {origin})"),
                None => what,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The effective configuration as TOML, for `--print-config`.
pub fn render_toml<C: ServiceConfig>(config: &C) -> Result<String, RuntimeError> {
    toml::to_string_pretty(config).map_err(|e| RuntimeError::Config(format!("cannot render config: {e}")))
}
