//! Where an IAM object lives: its resource path (what bindings cover and Authorize is asked
//! about), its record key in flaredb, and how messages name it. The constructors validate the
//! names they are given, so no unchecked name reaches a key or a path.

use crate::error::IamError;
use crate::model::{validate_name, validate_scope, SYSTEM};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub path: String,
    pub key: String,
    pub what: String,
}

impl Addr {
    pub fn org(name: &str) -> Result<Self, IamError> {
        validate_name("name", name)?;
        Ok(Self { path: format!("orgs/{name}"), key: format!("org/{name}"), what: format!("org {name}") })
    }

    pub fn project(org: &str, name: &str) -> Result<Self, IamError> {
        validate_name("org", org)?;
        validate_name("name", name)?;
        Ok(Self {
            path: format!("orgs/{org}/projects/{name}"),
            key: format!("project/{org}/{name}"),
            what: format!("project {org}/{name}"),
        })
    }

    /// A user; `org` empty for a system user.
    pub fn user(org: &str, name: &str) -> Result<Self, IamError> {
        validate_name("name", name)?;
        let path = if org.is_empty() {
            format!("users/{name}")
        } else {
            validate_name("org", org)?;
            format!("orgs/{org}/users/{name}")
        };
        Ok(Self { path, key: format!("user/{name}"), what: format!("user {name}") })
    }

    pub fn group(org: &str, name: &str) -> Result<Self, IamError> {
        validate_name("org", org)?;
        validate_name("name", name)?;
        Ok(Self {
            path: format!("orgs/{org}/groups/{name}"),
            key: format!("group/{org}/{name}"),
            what: format!("group {org}/{name}"),
        })
    }

    pub fn service_account(org: &str, project: &str, name: &str) -> Result<Self, IamError> {
        validate_name("org", org)?;
        validate_name("project", project)?;
        validate_name("name", name)?;
        Ok(Self {
            path: format!("orgs/{org}/projects/{project}/service-accounts/{name}"),
            key: format!("sa/{org}/{project}/{name}"),
            what: format!("service account sa:{org}/{project}/{name}"),
        })
    }

    /// A role by its id (`<scope>/roles/<name>`, or `roles/<name>` at system scope).
    pub fn role(id: &str) -> Result<Self, IamError> {
        let bad = || IamError::invalid("id", format!("{id:?} is not <scope>/roles/<name> or roles/<name>"));
        let (scope, name) = match id.rsplit_once("/roles/") {
            Some((scope, name)) => (scope, name),
            None => (SYSTEM, id.strip_prefix("roles/").ok_or_else(bad)?),
        };
        validate_scope("id", scope).map_err(|_| bad())?;
        validate_name("id", name).map_err(|_| bad())?;
        Self::role_at(scope, name)
    }

    pub fn role_at(scope: &str, name: &str) -> Result<Self, IamError> {
        validate_scope("scope", scope)?;
        validate_name("name", name)?;
        let id = in_scope(scope, "roles", name);
        Ok(Self { key: format!("role/{id}"), what: format!("role {id}"), path: id })
    }

    pub fn binding(scope: &str, id: &str) -> Result<Self, IamError> {
        validate_scope("scope", scope)?;
        validate_name("id", id)?;
        let path = in_scope(scope, "bindings", id);
        Ok(Self { key: format!("binding/{path}"), what: format!("binding {id} at {scope}"), path })
    }

    /// `owner` is the resource path of the key's user or service account.
    pub fn access_key(owner: &str, key_id: &str) -> Result<Self, IamError> {
        validate_key_id(key_id)?;
        Ok(Self {
            path: format!("{owner}/access-keys/{key_id}"),
            key: format!("akey/{key_id}"),
            what: format!("access key {key_id}"),
        })
    }
}

/// `<scope>/<kind>/<name>`, or `<kind>/<name>` at system scope.
pub fn in_scope(scope: &str, kind: &str, name: &str) -> String {
    if scope == SYSTEM {
        format!("{kind}/{name}")
    } else {
        format!("{scope}/{kind}/{name}")
    }
}

pub fn validate_key_id(key_id: &str) -> Result<(), IamError> {
    if key_id.is_empty() || key_id.len() > 64 || !key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IamError::invalid("key_id", format!("{key_id:?} is not an access key id")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_validate_and_agree() {
        let role = Addr::role("orgs/a/roles/deployer").unwrap();
        assert_eq!(role, Addr::role_at("orgs/a", "deployer").unwrap());
        assert_eq!(Addr::role("roles/auditor").unwrap().path, "roles/auditor");
        assert_eq!(Addr::binding("system", "x1").unwrap().key, "binding/bindings/x1");
        assert_eq!(Addr::user("", "admin").unwrap().path, "users/admin");
        for bad in [Addr::org("A"), Addr::project("a", ""), Addr::role("nonsense"), Addr::binding("orgs", "x")] {
            assert!(bad.is_err());
        }
    }
}
