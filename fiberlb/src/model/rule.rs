//! An L7 rule of a listener: what requests it matches (host, path prefix or regex, headers),
//! what it does with them (forward to a pool, or redirect), and the request headers it sets or
//! removes on the way. Rules are tried by ascending priority; the first match wins.

use std::collections::BTreeMap;

use photon_resource::{FieldError, Kind};
use serde::{Deserialize, Serialize};

use super::listener::check_host;
use super::check_pool_ref;
use photon_resource::check_range;

pub struct Rule;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// The request's host (without port), `*.` first for any subdomain.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// A regular expression the whole path must match (RE2 syntax, as the `regex` crate).
    #[serde(default)]
    pub path_regex: Option<String>,
    /// Headers that must be present with exactly these values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Forward { pool: String },
    Redirect { location: String, #[serde(default = "found")] status: u16 },
}

fn found() -> u16 {
    302
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub priority: u32,
    #[serde(default, rename = "match")]
    pub matches: Match,
    pub action: Action,
    /// Request headers set (replaced) before forwarding.
    #[serde(default)]
    pub set_headers: BTreeMap<String, String>,
    /// Request headers removed before forwarding.
    #[serde(default)]
    pub remove_headers: Vec<String>,
}

fn header_name(field: &str, name: &str) -> Result<(), FieldError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| ())
        .map_err(|_| FieldError::new(field, format!("{name:?} is not a header name")))
}

fn header_value(field: &str, value: &str) -> Result<(), FieldError> {
    http::HeaderValue::from_str(value)
        .map(|_| ())
        .map_err(|_| FieldError::new(field, format!("{value:?} is not a header value")))
}

impl Kind for Rule {
    type Spec = RuleSpec;
    const NAME: &'static str = "rule";
    const PATH: &'static [&'static str] = &["loadbalancers", "listeners", "rules"];

    fn validate(spec: &RuleSpec) -> Result<(), FieldError> {
        check_range("spec.priority", spec.priority, 0..=1_000_000)?;
        let m = &spec.matches;
        if let Some(host) = &m.host {
            check_host("spec.match.host", host, true)?;
        }
        if let Some(prefix) = &m.path_prefix {
            if !prefix.starts_with('/') {
                return Err(FieldError::new("spec.match.path_prefix", "a path starts with /"));
            }
        }
        if let Some(pattern) = &m.path_regex {
            if pattern.len() > 1024 {
                return Err(FieldError::new("spec.match.path_regex", "at most 1024 bytes"));
            }
            regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| FieldError::new("spec.match.path_regex", format!("not a regular expression: {e}")))?;
        }
        for (name, value) in &m.headers {
            header_name(&format!("spec.match.headers.{name}"), name)?;
            header_value(&format!("spec.match.headers.{name}"), value)?;
        }
        match &spec.action {
            Action::Forward { pool } => check_pool_ref("spec.action.forward.pool", pool)?,
            Action::Redirect { location, status } => {
                if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                    return Err(FieldError::new("spec.action.redirect.status", format!("{status} is not a redirect (301, 302, 303, 307, 308)")));
                }
                header_value("spec.action.redirect.location", location)?;
                if location.is_empty() {
                    return Err(FieldError::new("spec.action.redirect.location", "a URL or path is required"));
                }
            }
        }
        for (name, value) in &spec.set_headers {
            header_name(&format!("spec.set_headers.{name}"), name)?;
            header_value(&format!("spec.set_headers.{name}"), value)?;
        }
        for (i, name) in spec.remove_headers.iter().enumerate() {
            header_name(&format!("spec.remove_headers[{i}]"), name)?;
        }
        Ok(())
    }
}
