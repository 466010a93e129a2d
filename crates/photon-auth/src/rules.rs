//! What each route or RPC declares: the action it needs and the resource it acts on, written
//! as templates over the request (path segments and headers).
//!
//! Patterns are paths whose `{name}` segments capture (`/api/v1/orgs/{org}/buckets/{bucket}`,
//! or a gRPC method `/photon.demo.v1.Demo/Get`); resources are templates that use captures
//! and headers (`orgs/{org}/projects/{header:x-photon-project}`).

use std::collections::HashMap;

use axum::http::{HeaderMap, Method};

#[derive(Debug, Clone)]
pub struct Rule {
    method: Option<Method>,
    pattern: Vec<String>,
    /// `None`: public (no token needed).
    need: Option<(String, String)>,
}

impl Rule {
    /// `method` (`None`: any) on `pattern` needs `action` on `resource`.
    pub fn new(method: Option<Method>, pattern: &str, action: &str, resource: &str) -> Self {
        Self { method, pattern: split(pattern), need: Some((action.to_string(), resource.to_string())) }
    }

    /// A gRPC method (`/package.Service/Method`) that needs `action` on `resource`.
    pub fn grpc(path: &str, action: &str, resource: &str) -> Self {
        Self::new(Some(Method::POST), path, action, resource)
    }

    /// Decided by the handler, which alone knows what the request acts on (a generic gRPC
    /// service whose message names the resource, say): the guard lets it through, and the
    /// handler must authorize it itself (`photon-resource`'s gRPC service asks with the rule
    /// of the REST route the call mirrors).
    pub fn by_handler(method: Option<Method>, pattern: &str) -> Self {
        Self { method, pattern: split(pattern), need: None }
    }

    /// Open to anyone.
    pub fn public(method: Option<Method>, pattern: &str) -> Self {
        Self { method, pattern: split(pattern), need: None }
    }

    fn captures(&self, method: &Method, path: &str) -> Option<HashMap<String, String>> {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return None;
        }
        let segments = split(path);
        if segments.len() != self.pattern.len() {
            return None;
        }
        let mut captures = HashMap::new();
        for (want, got) in self.pattern.iter().zip(&segments) {
            match want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(name) => {
                    captures.insert(name.to_string(), got.clone());
                }
                None if want == got => {}
                None => return None,
            }
        }
        Some(captures)
    }
}

fn split(path: &str) -> Vec<String> {
    path.trim_matches('/').split('/').map(String::from).collect()
}

/// What a request needs: nothing (public), or an action on a resource.
#[derive(Debug, PartialEq, Eq)]
pub enum Need {
    Nothing,
    Action {
        action: String,
        resource: String,
    },
    /// No rule covers the request (so it is refused), or a template could not be filled.
    Undeclared(String),
}

/// The first rule that matches decides.
pub fn need(rules: &[Rule], method: &Method, path: &str, headers: &HeaderMap) -> Need {
    for rule in rules {
        let Some(captures) = rule.captures(method, path) else { continue };
        let Some((action, template)) = &rule.need else { return Need::Nothing };
        return match render(template, &captures, headers) {
            Ok(resource) => Need::Action { action: action.clone(), resource },
            Err(missing) => Need::Undeclared(format!("{method} {path}: the resource needs {missing}")),
        };
    }
    Need::Undeclared(format!("{method} {path} declares no action, so it is refused"))
}

fn render(template: &str, captures: &HashMap<String, String>, headers: &HeaderMap) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').ok_or_else(|| format!("a closed {{...}} in {template:?}"))? + start;
        let name = &rest[start + 1..end];
        let value = match name.strip_prefix("header:") {
            Some(header) => headers
                .get(header)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
                .ok_or_else(|| format!("header {header}"))?,
            None => captures.get(name).cloned().ok_or_else(|| format!("path segment {{{name}}}"))?,
        };
        if value.is_empty() || value.contains('/') {
            return Err(format!("{name} to be one non-empty segment"));
        }
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_paths_and_fill_resources() {
        let rules = vec![
            Rule::public(Some(Method::GET), "/api/v1/ping"),
            Rule::new(Some(Method::GET), "/api/v1/orgs/{org}/items", "demo:items:list", "orgs/{org}"),
            Rule::grpc("/photon.demo.v1.Demo/Get", "demo:items:get", "orgs/{header:x-org}/projects/{header:x-project}"),
        ];
        let mut headers = HeaderMap::new();
        assert_eq!(need(&rules, &Method::GET, "/api/v1/ping", &headers), Need::Nothing);
        assert_eq!(
            need(&rules, &Method::GET, "/api/v1/orgs/acme/items", &headers),
            Need::Action { action: "demo:items:list".into(), resource: "orgs/acme".into() }
        );
        assert!(matches!(need(&rules, &Method::POST, "/api/v1/orgs/acme/items", &headers), Need::Undeclared(_)));
        assert!(matches!(need(&rules, &Method::POST, "/photon.demo.v1.Demo/Get", &headers), Need::Undeclared(_)));
        headers.insert("x-org", "acme".parse().unwrap());
        headers.insert("x-project", "web".parse().unwrap());
        assert_eq!(
            need(&rules, &Method::POST, "/photon.demo.v1.Demo/Get", &headers),
            Need::Action { action: "demo:items:get".into(), resource: "orgs/acme/projects/web".into() }
        );
        headers.insert("x-project", "web/../../other".parse().unwrap());
        assert!(matches!(need(&rules, &Method::POST, "/photon.demo.v1.Demo/Get", &headers), Need::Undeclared(_)));
    }
}
