//! Stored records to protobuf messages and back (only conditions come in as protobuf).

use photon_api::iam::v1 as pb;

use crate::authz::condition::Condition;
use crate::error::IamError;
use crate::model::{AccessKey, Binding, Effect, Group, Org, Project, Role, ServiceAccount, User};
use crate::state::AuditRecord;

pub fn org(o: Org) -> pb::Org {
    pb::Org { name: o.name, display_name: o.display_name, created_at: o.created_at }
}

pub fn project(p: Project) -> pb::Project {
    pb::Project { org: p.org, name: p.name, display_name: p.display_name, created_at: p.created_at }
}

/// Never the password hash.
pub fn user(u: User) -> pb::User {
    pb::User { name: u.name, org: u.org, display_name: u.display_name, disabled: u.disabled, created_at: u.created_at }
}

pub fn group(g: Group) -> pb::Group {
    pb::Group { org: g.org, name: g.name, members: g.members.into_iter().collect(), created_at: g.created_at }
}

pub fn service_account(a: ServiceAccount) -> pb::ServiceAccount {
    pb::ServiceAccount { org: a.org, project: a.project, name: a.name, disabled: a.disabled, created_at: a.created_at }
}

pub fn role(r: Role) -> pb::Role {
    let id = r.id();
    pb::Role {
        scope: r.scope,
        name: r.name,
        description: r.description,
        permissions: r.permissions,
        id,
        created_at: r.created_at,
    }
}

pub fn binding(b: Binding) -> pb::Binding {
    pb::Binding {
        id: b.id,
        scope: b.scope,
        principal: b.principal,
        role: b.role,
        effect: match b.effect {
            Effect::Allow => "allow".into(),
            Effect::Deny => "deny".into(),
        },
        condition: b.condition.map(condition_out),
        created_at: b.created_at,
    }
}

/// Never the secret.
pub fn access_key(k: AccessKey) -> pb::AccessKey {
    pb::AccessKey { key_id: k.key_id, principal: k.principal, disabled: k.disabled, created_at: k.created_at }
}

pub fn audit(r: AuditRecord) -> pb::AuditEntry {
    pb::AuditEntry {
        at_ms: r.at_ms,
        principal: r.principal,
        action: r.action,
        resource: r.resource,
        outcome: r.outcome,
        detail: r.detail,
    }
}

pub fn condition_in(c: pb::Condition) -> Result<Condition, IamError> {
    let hours_utc = match c.hours_utc.as_slice() {
        [] => None,
        [start, end] => Some([
            u8::try_from(*start).map_err(|_| IamError::invalid("condition.hours_utc", "hours are 0-24"))?,
            u8::try_from(*end).map_err(|_| IamError::invalid("condition.hours_utc", "hours are 0-24"))?,
        ]),
        _ => return Err(IamError::invalid("condition.hours_utc", "give [start_hour, end_hour] or nothing")),
    };
    Ok(Condition {
        source_cidrs: c.source_cidrs,
        not_before: c.not_before,
        not_after: c.not_after,
        hours_utc,
        resource_labels: c.resource_labels.into_iter().collect(),
    })
}

fn condition_out(c: Condition) -> pb::Condition {
    pb::Condition {
        source_cidrs: c.source_cidrs,
        not_before: c.not_before,
        not_after: c.not_after,
        hours_utc: c.hours_utc.map(|[s, e]| vec![u32::from(s), u32::from(e)]).unwrap_or_default(),
        resource_labels: c.resource_labels.into_iter().collect(),
    }
}
