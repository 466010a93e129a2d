//! What IAM stores, as JSON records in flaredb (namespace `iam`), and the names, principals and
//! resource paths that tie them together.
//!
//! Resource paths (what bindings are scoped to and Authorize is asked about) nest:
//! `system` ⊃ `orgs/<org>` ⊃ `orgs/<org>/projects/<project>` ⊃ any path below. IAM's own objects
//! live in that tree too (`orgs/<org>/users/<name>`, `orgs/<org>/groups/<name>`, ...), so the
//! same bindings govern who may administer them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::authz::condition::Condition;
use crate::error::IamError;

/// Checks a name of an org, project, user, group, service account or role: 1–63 characters
/// of `[a-z0-9-]`, starting with a letter or digit.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), IamError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !ok {
        return Err(IamError::invalid(field, format!("{name:?} is not 1-63 characters of a-z, 0-9 and '-'")));
    }
    Ok(())
}

/// Checks free text (display names, descriptions): at most `max` characters, no control
/// characters.
pub fn validate_text(field: &'static str, text: &str, max: usize) -> Result<(), IamError> {
    if text.chars().count() > max {
        return Err(IamError::invalid(field, format!("is {} characters; the limit is {max}", text.chars().count())));
    }
    if text.chars().any(char::is_control) {
        return Err(IamError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Org {
    pub name: String,
    pub display_name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Project {
    pub org: String,
    pub name: String,
    pub display_name: String,
    pub created_at: i64,
}

/// A person who logs in with a password. `org` empty: a system user (the bootstrap admin).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub name: String,
    pub org: String,
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Group {
    pub org: String,
    pub name: String,
    /// Principals (`user:…`, `sa:…`).
    pub members: BTreeSet<String>,
    pub created_at: i64,
}

/// A non-human principal of one project; it gets tokens through access keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceAccount {
    pub org: String,
    pub project: String,
    pub name: String,
    pub disabled: bool,
    pub created_at: i64,
}

/// Permissions defined at a scope, usable by bindings at that scope or below it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Role {
    pub scope: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub created_at: i64,
}

impl Role {
    /// How bindings name it: `<scope>/roles/<name>` (`roles/<name>` at system scope).
    pub fn id(&self) -> String {
        role_id(&self.scope, &self.name)
    }
}

pub fn role_id(scope: &str, name: &str) -> String {
    if scope == SYSTEM {
        format!("roles/{name}")
    } else {
        format!("{scope}/roles/{name}")
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

/// Grants (or, with `Deny`, withholds) a role's permissions to a principal or group on a scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Binding {
    pub id: String,
    pub scope: String,
    /// `user:<name>`, `group:<org>/<name>` or `sa:<org>/<project>/<name>`.
    pub principal: String,
    /// A built-in role (`admin`, `member`, `viewer`) or a role id.
    pub role: String,
    pub effect: Effect,
    pub condition: Option<Condition>,
    pub created_at: i64,
}

/// The S3-style credential of a user or service account. The secret is sealed with the
/// server key (see `secrets.rs`), never stored in the clear.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessKey {
    pub key_id: String,
    pub principal: String,
    pub sealed_secret: String,
    pub disabled: bool,
    pub created_at: i64,
}

// Stored in flaredb as JSON records.
flaredb_client::json_record!(Org, Project, User, Group, ServiceAccount, Role, Binding, AccessKey);

pub const SYSTEM: &str = "system";

/// Checks a scope: `system`, or a path of `kind/name` pairs under `orgs/<org>`.
pub fn validate_scope(field: &'static str, scope: &str) -> Result<(), IamError> {
    if scope == SYSTEM {
        return Ok(());
    }
    let parts: Vec<&str> = scope.split('/').collect();
    let ok = parts.len() >= 2
        && parts.len().is_multiple_of(2)
        && parts[0] == "orgs"
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 128 && !p.contains(['#', '\0']));
    if !ok {
        return Err(IamError::invalid(
            field,
            format!("{scope:?} is not 'system' or a path like orgs/<org>[/projects/<project>[/<kind>/<name>...]]"),
        ));
    }
    Ok(())
}

/// The org a resource path belongs to, if any.
pub fn org_of(path: &str) -> Option<&str> {
    path.strip_prefix("orgs/").map(|rest| rest.split('/').next().unwrap_or(rest))
}

/// Whether a binding at `scope` covers `resource`.
pub fn covers(scope: &str, resource: &str) -> bool {
    scope == SYSTEM
        || resource == scope
        || (resource.starts_with(scope) && resource.as_bytes().get(scope.len()) == Some(&b'/'))
}

/// A principal as bindings and tokens name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    User(String),
    Group { org: String, name: String },
    ServiceAccount { org: String, project: String, name: String },
}

impl Principal {
    pub fn parse(field: &'static str, text: &str) -> Result<Self, IamError> {
        let bad = || {
            IamError::invalid(
                field,
                format!("{text:?} is not user:<name>, group:<org>/<name> or sa:<org>/<project>/<name>"),
            )
        };
        let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let principal = match (kind, parts.as_slice()) {
            ("user", [name]) => Principal::User(name.to_string()),
            ("group", [org, name]) => Principal::Group { org: org.to_string(), name: name.to_string() },
            ("sa", [org, project, name]) => {
                Principal::ServiceAccount { org: org.to_string(), project: project.to_string(), name: name.to_string() }
            }
            _ => return Err(bad()),
        };
        for part in parts {
            validate_name(field, part).map_err(|_| bad())?;
        }
        Ok(principal)
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::User(name) => write!(f, "user:{name}"),
            Principal::Group { org, name } => write!(f, "group:{org}/{name}"),
            Principal::ServiceAccount { org, project, name } => write!(f, "sa:{org}/{project}/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_cover_what_is_below_them() {
        assert!(covers("system", "orgs/a/projects/p"));
        assert!(covers("orgs/a", "orgs/a"));
        assert!(covers("orgs/a", "orgs/a/projects/p/instances/vm1"));
        assert!(!covers("orgs/a", "orgs/ab"), "a prefix of a name is not a parent");
        assert!(!covers("orgs/a/projects/p", "orgs/a"));
        assert_eq!(org_of("orgs/acme/projects/web"), Some("acme"));
        assert_eq!(org_of("users/admin"), None);
        for good in ["system", "orgs/a", "orgs/a/projects/p", "orgs/a/projects/p/buckets/b"] {
            assert!(validate_scope("scope", good).is_ok(), "{good}");
        }
        for bad in ["", "orgs", "orgs/", "orgs/a/projects", "projects/p", "orgs//x/y"] {
            assert!(validate_scope("scope", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn principals_round_trip() {
        for text in ["user:alice", "group:acme/ops", "sa:acme/web/deployer"] {
            assert_eq!(Principal::parse("p", text).unwrap().to_string(), text);
        }
        for bad in ["alice", "user:", "user:Alice", "group:acme", "sa:acme/web", "robot:x"] {
            assert!(Principal::parse("p", bad).is_err(), "{bad}");
        }
    }
}
