//! The `photon.iam.v1.Admin` service: CRUD of orgs, projects, users, groups, service accounts,
//! roles, bindings and access keys, the audit query and key rotation. Every call authenticates
//! the caller, authorizes the declared action (`actions.rs`) on the object's resource path,
//! validates input before writing, and audits the change.

use std::collections::BTreeSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use photon_api::iam::v1 as pb;
use photon_api::iam::v1::admin_server::Admin;
use tonic::{Request, Response, Status};

use super::actions::action;
use super::convert;
use crate::authz::action::validate_pattern;
use crate::authz::engine::{builtin, role_usable_at};
use crate::error::IamError;
use crate::model::{
    covers, role_id, validate_name, validate_scope, AccessKey, Binding, Effect, Group, Org, Principal, Project, Role,
    ServiceAccount, User, SYSTEM,
};
use crate::state::{now_ms, AuditRecord, Iam};
use crate::tokens::{now, Claims};

pub struct AdminService {
    iam: Iam,
}

impl AdminService {
    pub fn new(iam: Iam) -> Self {
        Self { iam }
    }
}

/// The authenticated caller of a request and where it came from.
struct Call<T> {
    caller: Claims,
    source: Option<std::net::IpAddr>,
    body: T,
}

impl AdminService {
    fn call<T>(&self, request: Request<T>) -> Result<Call<T>, IamError> {
        let caller = self.iam.caller(request.metadata())?;
        let source = request.remote_addr().map(|a| a.ip());
        Ok(Call { caller, source, body: request.into_inner() })
    }

    async fn require<T>(&self, call: &Call<T>, rpc: &str, resource: &str) -> Result<(), IamError> {
        self.iam.require(&call.caller, action(rpc), resource, call.source).await
    }

    async fn changed<T>(&self, call: &Call<T>, rpc: &str, resource: &str, detail: &str) {
        self.iam.audit(&call.caller.sub, action(rpc), resource, "ok", detail).await;
    }

    /// The resource path of a principal (where its access keys and bindings about it live).
    async fn principal_path(&self, principal: &str) -> Result<String, IamError> {
        match Principal::parse("principal", principal)? {
            Principal::User(name) => Ok(user_path(&self.user(&name).await?.value)),
            Principal::Group { org, name } => Ok(format!("orgs/{org}/groups/{name}")),
            Principal::ServiceAccount { org, project, name } => {
                Ok(format!("orgs/{org}/projects/{project}/service-accounts/{name}"))
            }
        }
    }

    async fn user(&self, name: &str) -> Result<crate::db::Versioned<User>, IamError> {
        validate_name("name", name)?;
        self.iam.db.fetch(&format!("user/{name}"), || format!("user {name}")).await
    }

    async fn ensure_org(&self, org: &str) -> Result<(), IamError> {
        validate_name("org", org)?;
        self.iam.db.fetch::<Org>(&format!("org/{org}"), || format!("org {org}")).await.map(|_| ())
    }

    async fn ensure_project(&self, org: &str, project: &str) -> Result<(), IamError> {
        validate_name("project", project)?;
        self.iam
            .db
            .fetch::<Project>(&format!("project/{org}/{project}"), || format!("project {org}/{project}"))
            .await
            .map(|_| ())
    }

    async fn ensure_principal(&self, principal: &str) -> Result<(), IamError> {
        match Principal::parse("principal", principal)? {
            Principal::User(name) => self.user(&name).await.map(|_| ()),
            Principal::Group { org, name } => self
                .iam
                .db
                .fetch::<Group>(&format!("group/{org}/{name}"), || format!("group {org}/{name}"))
                .await
                .map(|_| ()),
            Principal::ServiceAccount { org, project, name } => self
                .iam
                .db
                .fetch::<ServiceAccount>(&format!("sa/{org}/{project}/{name}"), || {
                    format!("service account {principal}")
                })
                .await
                .map(|_| ()),
        }
    }

    /// Keeps the entries of a list the caller may `get`.
    async fn visible<T>(&self, call: &Call<impl Sized>, rpc_get: &str, items: Vec<(String, T)>) -> Vec<T> {
        let policies = self.iam.policies();
        let context =
            crate::authz::condition::RequestContext { source_ip: call.source, now: now(), ..Default::default() };
        items
            .into_iter()
            .filter(|(path, _)| policies.decide(&call.caller.sub, action(rpc_get), path, &context).allowed)
            .map(|(_, item)| item)
            .collect()
    }

    /// Reads, changes and writes a group, retrying when another change landed in between.
    async fn change_group(&self, org: &str, name: &str, change: impl Fn(&mut Group)) -> Result<Group, IamError> {
        let key = format!("group/{org}/{name}");
        for _ in 0..8 {
            let current = self.iam.db.fetch::<Group>(&key, || format!("group {org}/{name}")).await?;
            let mut group = current.value;
            change(&mut group);
            if self.iam.db.update(&key, &group, current.version).await? {
                return Ok(group);
            }
        }
        Err(IamError::Unavailable(format!("group {org}/{name} kept changing; try again")))
    }

    async fn after_policy_change(&self) {
        if let Err(e) = self.iam.reload_policies().await {
            tracing::warn!(error = %e, "reloading policies after a change failed; the periodic reload will retry");
        }
    }
}

fn user_path(user: &User) -> String {
    if user.org.is_empty() {
        format!("users/{}", user.name)
    } else {
        format!("orgs/{}/users/{}", user.org, user.name)
    }
}

fn binding_path(scope: &str, id: &str) -> String {
    if scope == SYSTEM {
        format!("bindings/{id}")
    } else {
        format!("{scope}/bindings/{id}")
    }
}

/// A role id's (scope, name).
fn split_role_id(id: &str) -> Result<(String, String), IamError> {
    let bad = || IamError::invalid("id", format!("{id:?} is not <scope>/roles/<name> or roles/<name>"));
    let (scope, name) = match id.rsplit_once("/roles/") {
        Some((scope, name)) => (scope.to_string(), name.to_string()),
        None => (SYSTEM.to_string(), id.strip_prefix("roles/").ok_or_else(bad)?.to_string()),
    };
    validate_scope("id", &scope).map_err(|_| bad())?;
    validate_name("id", &name).map_err(|_| bad())?;
    Ok((scope, name))
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_org(&self, request: Request<pb::CreateOrgRequest>) -> Reply<pb::Org> {
        let call = self.call(request)?;
        validate_name("name", &call.body.name)?;
        let path = format!("orgs/{}", call.body.name);
        self.require(&call, "CreateOrg", &path).await?;
        let org = Org { name: call.body.name.clone(), display_name: call.body.display_name.clone(), created_at: now() };
        self.iam.db.create(&format!("org/{}", org.name), &org, || format!("org {}", org.name)).await?;
        self.changed(&call, "CreateOrg", &path, "").await;
        Ok(Response::new(convert::org(org)))
    }

    async fn get_org(&self, request: Request<pb::GetOrgRequest>) -> Reply<pb::Org> {
        let call = self.call(request)?;
        validate_name("name", &call.body.name)?;
        self.require(&call, "GetOrg", &format!("orgs/{}", call.body.name)).await?;
        let org =
            self.iam.db.fetch::<Org>(&format!("org/{}", call.body.name), || format!("org {}", call.body.name)).await?;
        Ok(Response::new(convert::org(org.value)))
    }

    async fn list_orgs(&self, request: Request<pb::ListOrgsRequest>) -> Reply<pb::ListOrgsResponse> {
        let call = self.call(request)?;
        let orgs: Vec<(String, Org)> =
            self.iam.db.list::<Org>("org/").await?.into_iter().map(|(_, o)| (format!("orgs/{}", o.name), o)).collect();
        let orgs = self.visible(&call, "GetOrg", orgs).await;
        Ok(Response::new(pb::ListOrgsResponse { orgs: orgs.into_iter().map(convert::org).collect() }))
    }

    async fn delete_org(&self, request: Request<pb::DeleteOrgRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        validate_name("name", &call.body.name)?;
        let org = &call.body.name;
        let path = format!("orgs/{org}");
        self.require(&call, "DeleteOrg", &path).await?;
        self.ensure_org(org).await?;
        let projects = self.iam.db.list::<Project>(&format!("project/{org}/")).await?.len();
        let users = self.iam.db.list::<User>("user/").await?.into_iter().filter(|(_, u)| &u.org == org).count();
        let groups = self.iam.db.list::<Group>(&format!("group/{org}/")).await?.len();
        if projects + users + groups > 0 {
            return Err(IamError::FailedPrecondition(format!(
                "org {org} is not empty: {projects} projects, {users} users, {groups} groups"
            ))
            .into());
        }
        self.iam.db.delete(&format!("org/{org}")).await?;
        self.changed(&call, "DeleteOrg", &path, "").await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn create_project(&self, request: Request<pb::CreateProjectRequest>) -> Reply<pb::Project> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("name", &b.name)?;
        let path = format!("orgs/{}/projects/{}", b.org, b.name);
        self.require(&call, "CreateProject", &path).await?;
        self.ensure_org(&b.org).await?;
        let project = Project {
            org: b.org.clone(),
            name: b.name.clone(),
            display_name: b.display_name.clone(),
            created_at: now(),
        };
        let key = format!("project/{}/{}", b.org, b.name);
        self.iam.db.create(&key, &project, || format!("project {}/{}", b.org, b.name)).await?;
        self.changed(&call, "CreateProject", &path, "").await;
        Ok(Response::new(convert::project(project)))
    }

    async fn get_project(&self, request: Request<pb::GetProjectRequest>) -> Reply<pb::Project> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("name", &b.name)?;
        self.require(&call, "GetProject", &format!("orgs/{}/projects/{}", b.org, b.name)).await?;
        let key = format!("project/{}/{}", b.org, b.name);
        let project = self.iam.db.fetch::<Project>(&key, || format!("project {}/{}", b.org, b.name)).await?;
        Ok(Response::new(convert::project(project.value)))
    }

    async fn list_projects(&self, request: Request<pb::ListProjectsRequest>) -> Reply<pb::ListProjectsResponse> {
        let call = self.call(request)?;
        validate_name("org", &call.body.org)?;
        self.require(&call, "ListProjects", &format!("orgs/{}", call.body.org)).await?;
        let projects = self.iam.db.list::<Project>(&format!("project/{}/", call.body.org)).await?;
        Ok(Response::new(pb::ListProjectsResponse {
            projects: projects.into_iter().map(|(_, p)| convert::project(p)).collect(),
        }))
    }

    async fn delete_project(&self, request: Request<pb::DeleteProjectRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("name", &b.name)?;
        let path = format!("orgs/{}/projects/{}", b.org, b.name);
        self.require(&call, "DeleteProject", &path).await?;
        self.ensure_project(&b.org, &b.name).await?;
        let accounts = self.iam.db.list::<ServiceAccount>(&format!("sa/{}/{}/", b.org, b.name)).await?.len();
        if accounts > 0 {
            return Err(IamError::FailedPrecondition(format!(
                "project {}/{} still has {accounts} service accounts",
                b.org, b.name
            ))
            .into());
        }
        self.iam.db.delete(&format!("project/{}/{}", b.org, b.name)).await?;
        self.changed(&call, "DeleteProject", &path, "").await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("name", &b.name)?;
        if !b.org.is_empty() {
            validate_name("org", &b.org)?;
        }
        let user = User {
            name: b.name.clone(),
            org: b.org.clone(),
            display_name: b.display_name.clone(),
            password_hash: String::new(),
            disabled: false,
            created_at: now(),
        };
        let path = user_path(&user);
        self.require(&call, "CreateUser", &path).await?;
        if !b.org.is_empty() {
            self.ensure_org(&b.org).await?;
        }
        crate::password::validate(&b.password)?;
        let user = User { password_hash: crate::password::hash(&b.password)?, ..user };
        self.iam.db.create(&format!("user/{}", user.name), &user, || format!("user {}", user.name)).await?;
        self.changed(&call, "CreateUser", &path, "").await;
        Ok(Response::new(convert::user(user)))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::User> {
        let call = self.call(request)?;
        let user = self.user(&call.body.name).await?.value;
        self.require(&call, "GetUser", &user_path(&user)).await?;
        Ok(Response::new(convert::user(user)))
    }

    async fn list_users(&self, request: Request<pb::ListUsersRequest>) -> Reply<pb::ListUsersResponse> {
        let call = self.call(request)?;
        let org = call.body.org.clone();
        let scope = if org.is_empty() { SYSTEM.to_string() } else { format!("orgs/{org}") };
        if !org.is_empty() {
            validate_name("org", &org)?;
        }
        self.require(&call, "ListUsers", &scope).await?;
        let users = self.iam.db.list::<User>("user/").await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users
                .into_iter()
                .filter(|(_, u)| org.is_empty() || u.org == org)
                .map(|(_, u)| convert::user(u))
                .collect(),
        }))
    }

    async fn update_user(&self, request: Request<pb::UpdateUserRequest>) -> Reply<pb::User> {
        let call = self.call(request)?;
        let current = self.user(&call.body.name).await?;
        let path = user_path(&current.value);
        self.require(&call, "UpdateUser", &path).await?;
        let mut user = current.value;
        let mut changed = Vec::new();
        if let Some(password) = &call.body.password {
            crate::password::validate(password)?;
            user.password_hash = crate::password::hash(password)?;
            changed.push("password");
        }
        if let Some(disabled) = call.body.disabled {
            user.disabled = disabled;
            changed.push(if disabled { "disabled" } else { "enabled" });
        }
        if !self.iam.db.update(&format!("user/{}", user.name), &user, current.version).await? {
            return Err(IamError::FailedPrecondition(format!("user {} changed meanwhile; try again", user.name)).into());
        }
        self.changed(&call, "UpdateUser", &path, &changed.join(", ")).await;
        Ok(Response::new(convert::user(user)))
    }

    async fn delete_user(&self, request: Request<pb::DeleteUserRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let user = self.user(&call.body.name).await?.value;
        let path = user_path(&user);
        self.require(&call, "DeleteUser", &path).await?;
        self.iam.db.delete(&format!("user/{}", user.name)).await?;
        self.changed(&call, "DeleteUser", &path, "").await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn create_group(&self, request: Request<pb::CreateGroupRequest>) -> Reply<pb::Group> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("name", &b.name)?;
        let path = format!("orgs/{}/groups/{}", b.org, b.name);
        self.require(&call, "CreateGroup", &path).await?;
        self.ensure_org(&b.org).await?;
        let group = Group { org: b.org.clone(), name: b.name.clone(), members: BTreeSet::new(), created_at: now() };
        self.iam
            .db
            .create(&format!("group/{}/{}", b.org, b.name), &group, || format!("group {}/{}", b.org, b.name))
            .await?;
        self.changed(&call, "CreateGroup", &path, "").await;
        Ok(Response::new(convert::group(group)))
    }

    async fn get_group(&self, request: Request<pb::GetGroupRequest>) -> Reply<pb::Group> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("name", &b.name)?;
        self.require(&call, "GetGroup", &format!("orgs/{}/groups/{}", b.org, b.name)).await?;
        let key = format!("group/{}/{}", b.org, b.name);
        let group = self.iam.db.fetch::<Group>(&key, || format!("group {}/{}", b.org, b.name)).await?;
        Ok(Response::new(convert::group(group.value)))
    }

    async fn list_groups(&self, request: Request<pb::ListGroupsRequest>) -> Reply<pb::ListGroupsResponse> {
        let call = self.call(request)?;
        validate_name("org", &call.body.org)?;
        self.require(&call, "ListGroups", &format!("orgs/{}", call.body.org)).await?;
        let groups = self.iam.db.list::<Group>(&format!("group/{}/", call.body.org)).await?;
        Ok(Response::new(pb::ListGroupsResponse {
            groups: groups.into_iter().map(|(_, g)| convert::group(g)).collect(),
        }))
    }

    async fn add_group_member(&self, request: Request<pb::GroupMemberRequest>) -> Reply<pb::Group> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("name", &b.name)?;
        let path = format!("orgs/{}/groups/{}", b.org, b.name);
        self.require(&call, "AddGroupMember", &path).await?;
        if matches!(Principal::parse("member", &b.member)?, Principal::Group { .. }) {
            return Err(IamError::invalid("member", "groups do not nest; add users or service accounts").into());
        }
        self.ensure_principal(&b.member).await?;
        let member = b.member.clone();
        let group = self
            .change_group(&b.org, &b.name, |g| {
                g.members.insert(member.clone());
            })
            .await?;
        self.changed(&call, "AddGroupMember", &path, &format!("added {}", b.member)).await;
        self.after_policy_change().await;
        Ok(Response::new(convert::group(group)))
    }

    async fn remove_group_member(&self, request: Request<pb::GroupMemberRequest>) -> Reply<pb::Group> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("name", &b.name)?;
        let path = format!("orgs/{}/groups/{}", b.org, b.name);
        self.require(&call, "RemoveGroupMember", &path).await?;
        let member = b.member.clone();
        let group = self
            .change_group(&b.org, &b.name, |g| {
                g.members.remove(&member);
            })
            .await?;
        self.changed(&call, "RemoveGroupMember", &path, &format!("removed {}", b.member)).await;
        self.after_policy_change().await;
        Ok(Response::new(convert::group(group)))
    }

    async fn delete_group(&self, request: Request<pb::DeleteGroupRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("name", &b.name)?;
        let path = format!("orgs/{}/groups/{}", b.org, b.name);
        self.require(&call, "DeleteGroup", &path).await?;
        if !self.iam.db.delete(&format!("group/{}/{}", b.org, b.name)).await? {
            return Err(IamError::NotFound(format!("group {}/{}", b.org, b.name)).into());
        }
        self.changed(&call, "DeleteGroup", &path, "").await;
        self.after_policy_change().await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn create_service_account(
        &self,
        request: Request<pb::CreateServiceAccountRequest>,
    ) -> Reply<pb::ServiceAccount> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("project", &b.project)?;
        validate_name("name", &b.name)?;
        let path = format!("orgs/{}/projects/{}/service-accounts/{}", b.org, b.project, b.name);
        self.require(&call, "CreateServiceAccount", &path).await?;
        self.ensure_project(&b.org, &b.project).await?;
        let account = ServiceAccount {
            org: b.org.clone(),
            project: b.project.clone(),
            name: b.name.clone(),
            disabled: false,
            created_at: now(),
        };
        let key = format!("sa/{}/{}/{}", b.org, b.project, b.name);
        self.iam.db.create(&key, &account, || format!("service account sa:{}/{}/{}", b.org, b.project, b.name)).await?;
        self.changed(&call, "CreateServiceAccount", &path, "").await;
        Ok(Response::new(convert::service_account(account)))
    }

    async fn get_service_account(&self, request: Request<pb::GetServiceAccountRequest>) -> Reply<pb::ServiceAccount> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("project", &b.project)?;
        validate_name("name", &b.name)?;
        self.require(
            &call,
            "GetServiceAccount",
            &format!("orgs/{}/projects/{}/service-accounts/{}", b.org, b.project, b.name),
        )
        .await?;
        let key = format!("sa/{}/{}/{}", b.org, b.project, b.name);
        let account = self.iam.db.fetch::<ServiceAccount>(&key, || format!("service account {key}")).await?;
        Ok(Response::new(convert::service_account(account.value)))
    }

    async fn list_service_accounts(
        &self,
        request: Request<pb::ListServiceAccountsRequest>,
    ) -> Reply<pb::ListServiceAccountsResponse> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("project", &b.project)?;
        self.require(&call, "ListServiceAccounts", &format!("orgs/{}/projects/{}", b.org, b.project)).await?;
        let accounts = self.iam.db.list::<ServiceAccount>(&format!("sa/{}/{}/", b.org, b.project)).await?;
        Ok(Response::new(pb::ListServiceAccountsResponse {
            service_accounts: accounts.into_iter().map(|(_, a)| convert::service_account(a)).collect(),
        }))
    }

    async fn delete_service_account(&self, request: Request<pb::DeleteServiceAccountRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_name("org", &b.org)?;
        validate_name("project", &b.project)?;
        validate_name("name", &b.name)?;
        let path = format!("orgs/{}/projects/{}/service-accounts/{}", b.org, b.project, b.name);
        self.require(&call, "DeleteServiceAccount", &path).await?;
        if !self.iam.db.delete(&format!("sa/{}/{}/{}", b.org, b.project, b.name)).await? {
            return Err(IamError::NotFound(format!("service account sa:{}/{}/{}", b.org, b.project, b.name)).into());
        }
        self.changed(&call, "DeleteServiceAccount", &path, "").await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn create_role(&self, request: Request<pb::CreateRoleRequest>) -> Reply<pb::Role> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_scope("scope", &b.scope)?;
        validate_name("name", &b.name)?;
        if builtin(&b.name).is_some() {
            return Err(IamError::invalid("name", format!("{} is a built-in role", b.name)).into());
        }
        if b.permissions.is_empty() || b.permissions.len() > 256 {
            return Err(IamError::invalid("permissions", "list 1 to 256 patterns").into());
        }
        for pattern in &b.permissions {
            validate_pattern(pattern)?;
        }
        let id = role_id(&b.scope, &b.name);
        self.require(&call, "CreateRole", &id).await?;
        let role = Role {
            scope: b.scope.clone(),
            name: b.name.clone(),
            description: b.description.clone(),
            permissions: b.permissions.clone(),
            created_at: now(),
        };
        self.iam.db.create(&format!("role/{id}"), &role, || format!("role {id}")).await?;
        self.changed(&call, "CreateRole", &id, &role.permissions.join(" ")).await;
        self.after_policy_change().await;
        Ok(Response::new(convert::role(role)))
    }

    async fn get_role(&self, request: Request<pb::GetRoleRequest>) -> Reply<pb::Role> {
        let call = self.call(request)?;
        split_role_id(&call.body.id)?;
        self.require(&call, "GetRole", &call.body.id).await?;
        let role =
            self.iam.db.fetch::<Role>(&format!("role/{}", call.body.id), || format!("role {}", call.body.id)).await?;
        Ok(Response::new(convert::role(role.value)))
    }

    async fn list_roles(&self, request: Request<pb::ListRolesRequest>) -> Reply<pb::ListRolesResponse> {
        let call = self.call(request)?;
        validate_scope("scope", &call.body.scope)?;
        self.require(&call, "ListRoles", &call.body.scope).await?;
        let prefix = format!("role/{}", role_id(&call.body.scope, ""));
        let roles = self.iam.db.list::<Role>(&prefix).await?;
        Ok(Response::new(pb::ListRolesResponse {
            roles: roles
                .into_iter()
                .filter(|(_, r)| r.scope == call.body.scope)
                .map(|(_, r)| convert::role(r))
                .collect(),
        }))
    }

    async fn delete_role(&self, request: Request<pb::DeleteRoleRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let id = call.body.id.clone();
        let (scope, _) = split_role_id(&id)?;
        self.require(&call, "DeleteRole", &id).await?;
        let in_use = self.iam.db.list::<Binding>("binding/").await?.into_iter().filter(|(_, b)| b.role == id).count();
        if in_use > 0 {
            return Err(IamError::FailedPrecondition(format!(
                "role {id} is used by {in_use} bindings; delete them first"
            ))
            .into());
        }
        if !self.iam.db.delete(&format!("role/{id}")).await? {
            return Err(IamError::NotFound(format!("role {id}")).into());
        }
        self.changed(&call, "DeleteRole", &id, &format!("scope {scope}")).await;
        self.after_policy_change().await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn create_binding(&self, request: Request<pb::CreateBindingRequest>) -> Reply<pb::Binding> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_scope("scope", &b.scope)?;
        let effect = match b.effect.as_str() {
            "" | "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            other => return Err(IamError::invalid("effect", format!("{other:?} is not allow or deny")).into()),
        };
        let condition = b.condition.clone().map(convert::condition_in).transpose()?;
        if let Some(condition) = &condition {
            condition.validate()?;
        }
        if !role_usable_at(&b.role, &b.scope) {
            return Err(IamError::invalid(
                "role",
                format!(
                    "{:?} is neither a built-in role (admin, member, viewer) nor a role defined at or above {}",
                    b.role, b.scope
                ),
            )
            .into());
        }
        let id = self.iam.new_id()?;
        let path = binding_path(&b.scope, &id);
        self.require(&call, "CreateBinding", &path).await?;
        if builtin(&b.role).is_none() {
            self.iam.db.fetch::<Role>(&format!("role/{}", b.role), || format!("role {}", b.role)).await?;
        }
        self.ensure_principal(&b.principal).await?;
        let binding = Binding {
            id: id.clone(),
            scope: b.scope.clone(),
            principal: b.principal.clone(),
            role: b.role.clone(),
            effect,
            condition,
            created_at: now(),
        };
        self.iam.db.create(&format!("binding/{path}"), &binding, || format!("binding {id}")).await?;
        let detail = format!("{} {:?} {}", binding.principal, binding.effect, binding.role);
        self.changed(&call, "CreateBinding", &path, &detail).await;
        self.after_policy_change().await;
        Ok(Response::new(convert::binding(binding)))
    }

    async fn get_binding(&self, request: Request<pb::GetBindingRequest>) -> Reply<pb::Binding> {
        let call = self.call(request)?;
        validate_scope("scope", &call.body.scope)?;
        validate_name("id", &call.body.id)?;
        let path = binding_path(&call.body.scope, &call.body.id);
        self.require(&call, "GetBinding", &path).await?;
        let binding =
            self.iam.db.fetch::<Binding>(&format!("binding/{path}"), || format!("binding {}", call.body.id)).await?;
        Ok(Response::new(convert::binding(binding.value)))
    }

    async fn list_bindings(&self, request: Request<pb::ListBindingsRequest>) -> Reply<pb::ListBindingsResponse> {
        let call = self.call(request)?;
        validate_scope("scope", &call.body.scope)?;
        self.require(&call, "ListBindings", &call.body.scope).await?;
        let prefix = format!("binding/{}", binding_path(&call.body.scope, ""));
        let bindings = self.iam.db.list::<Binding>(&prefix).await?;
        Ok(Response::new(pb::ListBindingsResponse {
            bindings: bindings
                .into_iter()
                .filter(|(_, b)| b.scope == call.body.scope)
                .map(|(_, b)| convert::binding(b))
                .collect(),
        }))
    }

    async fn delete_binding(&self, request: Request<pb::DeleteBindingRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        validate_scope("scope", &call.body.scope)?;
        validate_name("id", &call.body.id)?;
        let path = binding_path(&call.body.scope, &call.body.id);
        self.require(&call, "DeleteBinding", &path).await?;
        if !self.iam.db.delete(&format!("binding/{path}")).await? {
            return Err(IamError::NotFound(format!("binding {} at {}", call.body.id, call.body.scope)).into());
        }
        self.changed(&call, "DeleteBinding", &path, "").await;
        self.after_policy_change().await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn create_access_key(&self, request: Request<pb::CreateAccessKeyRequest>) -> Reply<pb::AccessKeyWithSecret> {
        let call = self.call(request)?;
        if matches!(Principal::parse("principal", &call.body.principal)?, Principal::Group { .. }) {
            return Err(IamError::invalid("principal", "access keys belong to users or service accounts").into());
        }
        let owner = self.principal_path(&call.body.principal).await?;
        self.ensure_principal(&call.body.principal).await?;
        let key_id = format!("PK{}", crate::secrets::hex(&self.iam.server_key.random(9)?).to_uppercase());
        let path = format!("{owner}/access-keys/{key_id}");
        self.require(&call, "CreateAccessKey", &path).await?;
        let secret = URL_SAFE_NO_PAD.encode(self.iam.server_key.random(30)?);
        let key = AccessKey {
            key_id: key_id.clone(),
            principal: call.body.principal.clone(),
            sealed_secret: self.iam.server_key.seal(secret.as_bytes())?,
            disabled: false,
            created_at: now(),
        };
        self.iam.db.create(&format!("akey/{key_id}"), &key, || format!("access key {key_id}")).await?;
        self.changed(&call, "CreateAccessKey", &path, "").await;
        Ok(Response::new(pb::AccessKeyWithSecret { key: Some(convert::access_key(key)), secret }))
    }

    async fn list_access_keys(&self, request: Request<pb::ListAccessKeysRequest>) -> Reply<pb::ListAccessKeysResponse> {
        let call = self.call(request)?;
        let owner = self.principal_path(&call.body.principal).await?;
        self.require(&call, "ListAccessKeys", &owner).await?;
        let keys = self.iam.db.list::<AccessKey>("akey/").await?;
        Ok(Response::new(pb::ListAccessKeysResponse {
            keys: keys
                .into_iter()
                .filter(|(_, k)| k.principal == call.body.principal)
                .map(|(_, k)| convert::access_key(k))
                .collect(),
        }))
    }

    async fn delete_access_key(&self, request: Request<pb::DeleteAccessKeyRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let key_id = &call.body.key_id;
        if key_id.is_empty() || key_id.len() > 64 || !key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(IamError::invalid("key_id", format!("{key_id:?} is not an access key id")).into());
        }
        let key = self.iam.db.fetch::<AccessKey>(&format!("akey/{key_id}"), || format!("access key {key_id}")).await?;
        let path = format!("{}/access-keys/{key_id}", self.principal_path(&key.value.principal).await?);
        self.require(&call, "DeleteAccessKey", &path).await?;
        self.iam.db.delete(&format!("akey/{key_id}")).await?;
        self.changed(&call, "DeleteAccessKey", &path, "").await;
        Ok(Response::new(pb::Empty {}))
    }

    async fn query_audit(&self, request: Request<pb::QueryAuditRequest>) -> Reply<pb::QueryAuditResponse> {
        let call = self.call(request)?;
        let b = &call.body;
        validate_scope("scope", &b.scope)?;
        self.require(&call, "QueryAudit", &b.scope).await?;
        let until = if b.until_ms == 0 { now_ms() + 1 } else { b.until_ms };
        let limit = if b.limit == 0 { 100 } else { b.limit.min(1000) } as usize;
        let mut entries: Vec<AuditRecord> = self
            .iam
            .db
            .list::<AuditRecord>("audit/")
            .await?
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| r.at_ms >= b.since_ms && r.at_ms < until && covers(&b.scope, &r.resource))
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
        entries.truncate(limit);
        Ok(Response::new(pb::QueryAuditResponse { entries: entries.into_iter().map(convert::audit).collect() }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Reply<pb::RotateSigningKeyResponse> {
        let call = self.call(request)?;
        self.require(&call, "RotateSigningKey", SYSTEM).await?;
        let kid = self.iam.keyring.rotate(&self.iam.db, &self.iam.server_key).await?;
        self.changed(&call, "RotateSigningKey", SYSTEM, &format!("new key {kid}")).await;
        Ok(Response::new(pb::RotateSigningKeyResponse { kid }))
    }
}
