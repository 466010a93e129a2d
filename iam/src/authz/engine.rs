//! The decision: which bindings apply to a request, and what they say.
//!
//! Default deny. A binding applies when its scope covers the resource, its principal is the
//! caller or a group the caller is in, and its condition holds. If any applying `deny` binding's
//! role grants the action, the answer is no; otherwise any applying `allow` binding whose role
//! grants it says yes. Built-in roles exist at every scope: `admin` (everything), `member`
//! (everything but changing IAM) and `viewer` (get and list).

use std::collections::{BTreeSet, HashMap};

use super::action::grants;
use super::condition::RequestContext;
use crate::model::{covers, Binding, Effect, Group, Role, SYSTEM};

/// The built-in roles' permissions.
pub fn builtin(role: &str) -> Option<&'static [&'static str]> {
    match role {
        "admin" => Some(&["*"]),
        "member" => Some(&["*", "!iam:*:*", "iam:*:get", "iam:*:list"]),
        "viewer" => Some(&["*:*:get", "*:*:list"]),
        _ => None,
    }
}

/// The answer to one Authorize question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
    /// The binding that decided (the denying one, or the first allowing one).
    pub binding: Option<String>,
}

/// Every binding, role and group, indexed for decisions. Rebuilt from flaredb on change.
#[derive(Debug, Default, Clone)]
pub struct PolicySet {
    bindings: HashMap<String, Vec<Binding>>,
    roles: HashMap<String, Vec<String>>,
    /// Principal → the groups (`group:org/name`) it is a member of.
    memberships: HashMap<String, BTreeSet<String>>,
}

impl PolicySet {
    pub fn new(bindings: Vec<Binding>, roles: Vec<Role>, groups: Vec<Group>) -> Self {
        let mut set = PolicySet::default();
        for binding in bindings {
            set.bindings.entry(binding.scope.clone()).or_default().push(binding);
        }
        for list in set.bindings.values_mut() {
            list.sort_by(|a, b| a.id.cmp(&b.id));
        }
        for role in roles {
            set.roles.insert(role.id(), role.permissions);
        }
        for group in groups {
            let id = format!("group:{}/{}", group.org, group.name);
            for member in group.members {
                set.memberships.entry(member).or_default().insert(id.clone());
            }
        }
        set
    }

    pub fn groups_of(&self, principal: &str) -> BTreeSet<String> {
        self.memberships.get(principal).cloned().unwrap_or_default()
    }

    /// Decides whether `principal` may do `action` on `resource`.
    pub fn decide(&self, principal: &str, action: &str, resource: &str, context: &RequestContext) -> Decision {
        let groups = self.groups_of(principal);
        let mut allowed_by: Option<&Binding> = None;
        let mut unmet: Option<(String, String)> = None;
        for scope in ancestors(resource) {
            let Some(bindings) = self.bindings.get(scope) else { continue };
            for binding in bindings {
                if binding.principal != principal && !groups.contains(&binding.principal) {
                    continue;
                }
                if !self.role_grants(&binding.role, action) {
                    continue;
                }
                if let Some(condition) = &binding.condition {
                    if let Err(why) = condition.check(context) {
                        unmet.get_or_insert((binding.id.clone(), why));
                        continue;
                    }
                }
                match binding.effect {
                    Effect::Deny => {
                        return Decision {
                            allowed: false,
                            reason: format!("{action} on {resource} is denied to {}", by(binding)),
                            binding: Some(binding.id.clone()),
                        }
                    }
                    Effect::Allow => {
                        allowed_by.get_or_insert(binding);
                    }
                }
            }
        }
        if let Some(binding) = allowed_by {
            return Decision {
                allowed: true,
                reason: format!("{action} on {resource} is allowed to {}", by(binding)),
                binding: Some(binding.id.clone()),
            };
        }
        let reason = match unmet {
            Some((id, why)) => {
                format!("{action} on {resource}: binding {id} would allow it but its condition fails: {why}")
            }
            None => format!("no binding grants {principal} {action} on {resource}"),
        };
        Decision { allowed: false, reason, binding: None }
    }

    fn role_grants(&self, role: &str, action: &str) -> bool {
        if let Some(builtin) = builtin(role) {
            let owned: Vec<String> = builtin.iter().map(|s| s.to_string()).collect();
            return grants(&owned, action);
        }
        self.roles.get(role).is_some_and(|permissions| grants(permissions, action))
    }
}

/// `<principal> by binding <id> (<role> at <scope>)`, for reasons.
fn by(binding: &Binding) -> String {
    format!("{} by binding {} ({} at {})", binding.principal, binding.id, binding.role, binding.scope)
}

/// `system`, then every path prefix of `resource` ending at a `/` boundary, then `resource`.
fn ancestors(resource: &str) -> impl Iterator<Item = &str> {
    let inner = resource.match_indices('/').map(move |(i, _)| &resource[..i]);
    std::iter::once(SYSTEM).chain(inner).chain(std::iter::once(resource).filter(|r| *r != SYSTEM))
}

/// Whether a binding at `binding_scope` may use the role `role` (defined at or above it).
pub fn role_usable_at(role: &str, binding_scope: &str) -> bool {
    if builtin(role).is_some() {
        return true;
    }
    let role_scope = match role.rsplit_once("/roles/") {
        Some((scope, _)) => scope,
        None if role.starts_with("roles/") => SYSTEM,
        None => return false,
    };
    covers(role_scope, binding_scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::condition::Condition;

    fn bind(id: &str, scope: &str, principal: &str, role: &str, effect: Effect) -> Binding {
        Binding {
            id: id.into(),
            scope: scope.into(),
            principal: principal.into(),
            role: role.into(),
            effect,
            condition: None,
            created_at: 0,
        }
    }

    fn policies() -> PolicySet {
        let deployer = Role {
            scope: "orgs/a".into(),
            name: "deployer".into(),
            description: String::new(),
            permissions: vec!["plasmavmc:instances:*".into(), "prismnet:*:get".into()],
            created_at: 0,
        };
        let ops = Group { org: "a".into(), name: "ops".into(), members: ["user:carol".into()].into(), created_at: 0 };
        let mut office = bind("b6", "orgs/a", "user:dave", "member", Effect::Allow);
        office.condition = Some(Condition { source_cidrs: vec!["10.0.0.0/8".into()], ..Default::default() });
        PolicySet::new(
            vec![
                bind("b0", "system", "user:root", "admin", Effect::Allow),
                bind("b1", "orgs/a", "user:alice", "admin", Effect::Allow),
                bind("b2", "orgs/a/projects/web", "user:bob", "orgs/a/roles/deployer", Effect::Allow),
                bind("b3", "orgs/a", "group:a/ops", "viewer", Effect::Allow),
                bind("b4", "orgs/a/projects/secret", "group:a/ops", "admin", Effect::Deny),
                bind("b5", "orgs/b", "user:erin", "admin", Effect::Allow),
                office,
            ],
            vec![deployer],
            vec![ops],
        )
    }

    #[test]
    fn decisions_across_scopes_wildcards_denies_and_conditions() {
        let p = policies();
        let inside = RequestContext { source_ip: Some("10.2.3.4".parse().unwrap()), ..Default::default() };
        let outside = RequestContext { source_ip: Some("192.168.0.1".parse().unwrap()), ..Default::default() };
        #[rustfmt::skip]
        let table: &[(&str, &str, &str, &RequestContext, bool, Option<&str>)] = &[
            ("user:root", "iam:orgs:delete", "orgs/b", &inside, true, Some("b0")),
            ("user:alice", "plasmavmc:instances:create", "orgs/a/projects/web/instances/vm1", &inside, true, Some("b1")),
            ("user:alice", "plasmavmc:instances:create", "orgs/b/projects/web", &inside, false, None),
            ("user:alice", "iam:orgs:delete", "orgs/ab", &inside, false, None),
            ("user:bob", "plasmavmc:instances:delete", "orgs/a/projects/web/instances/vm1", &inside, true, Some("b2")),
            ("user:bob", "plasmavmc:volumes:delete", "orgs/a/projects/web", &inside, false, None),
            ("user:bob", "prismnet:vpcs:get", "orgs/a/projects/web/vpcs/v", &inside, true, Some("b2")),
            ("user:bob", "plasmavmc:instances:create", "orgs/a/projects/api", &inside, false, None),
            ("user:carol", "lightningstor:buckets:list", "orgs/a/projects/web", &inside, true, Some("b3")),
            ("user:carol", "lightningstor:buckets:create", "orgs/a/projects/web", &inside, false, None),
            ("user:carol", "lightningstor:buckets:get", "orgs/a/projects/secret/buckets/x", &inside, false, Some("b4")),
            ("user:erin", "iam:users:create", "orgs/a/users/x", &inside, false, None),
            ("user:dave", "plasmavmc:instances:create", "orgs/a/projects/web", &inside, true, Some("b6")),
            ("user:dave", "plasmavmc:instances:create", "orgs/a/projects/web", &outside, false, None),
            ("user:dave", "iam:users:create", "orgs/a/users/x", &inside, false, None),
            ("user:dave", "iam:users:get", "orgs/a/users/x", &inside, true, Some("b6")),
            ("user:nobody", "plasmavmc:instances:get", "orgs/a", &inside, false, None),
        ];
        for (principal, action, resource, context, allowed, binding) in table {
            let d = p.decide(principal, action, resource, context);
            assert_eq!(d.allowed, *allowed, "{principal} {action} {resource}: {}", d.reason);
            assert_eq!(d.binding.as_deref(), *binding, "{principal} {action} {resource}: {}", d.reason);
        }
        let why = p.decide("user:dave", "plasmavmc:instances:create", "orgs/a/projects/web", &outside).reason;
        assert!(why.contains("condition fails") && why.contains("outside"), "{why}");
        let why = p.decide("user:carol", "lightningstor:buckets:get", "orgs/a/projects/secret", &inside).reason;
        assert!(why.contains("denied") && why.contains("b4"), "{why}");
    }

    #[test]
    fn custom_roles_are_usable_at_or_below_their_scope() {
        assert!(role_usable_at("admin", "orgs/x"));
        assert!(role_usable_at("orgs/a/roles/deployer", "orgs/a/projects/web"));
        assert!(!role_usable_at("orgs/a/roles/deployer", "orgs/b"));
        assert!(role_usable_at("roles/auditor", "orgs/b/projects/p"));
        assert!(!role_usable_at("nonsense", "orgs/b"));
    }
}
