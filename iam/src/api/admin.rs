//! The `photon.iam.v1.Admin` service: CRUD of orgs, projects, users, groups, service accounts,
//! roles, bindings and access keys, the audit query and key rotation. Every call authenticates
//! the caller, authorizes the declared action (`actions.rs`) on the object's resource path
//! (`addr.rs`), validates input before writing, and audits the change.

use std::collections::BTreeSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use flaredb_client::records::{FromRecord, ToRecord};
use photon_api::iam::v1 as pb;
use photon_api::iam::v1::admin_server::Admin;
use tonic::{Request, Response, Status};

use super::actions::action;
use super::convert;
use crate::addr::{in_scope, Addr};
use crate::authz::action::validate_pattern;
use crate::authz::engine::{builtin, role_usable_at};
use crate::error::IamError;
use crate::model::{
    covers, validate_scope, validate_text, AccessKey, Binding, Effect, Group, Org, Principal, Project, Role,
    ServiceAccount, User, SYSTEM,
};
use crate::state::{now_ms, AuditRecord, Iam};
use crate::tokens::{now, Claims};
use flaredb_client::records::Versioned;

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

type Reply<T> = Result<Response<T>, Status>;

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

    /// Authorizes `rpc` on the object at `addr` and reads it.
    async fn get_at<T: FromRecord, R>(&self, call: &Call<R>, rpc: &str, addr: &Addr) -> Result<Versioned<T>, IamError> {
        self.require(call, rpc, &addr.path).await?;
        Ok(self.iam.db.fetch(&addr.key, || addr.what.clone()).await?)
    }

    /// Writes a new object at `addr` (already authorized) and audits it.
    async fn create_at<T: ToRecord, R>(
        &self,
        call: &Call<R>,
        rpc: &str,
        addr: &Addr,
        value: &T,
        detail: &str,
    ) -> Result<(), IamError> {
        self.iam.db.create(&addr.key, value, || addr.what.clone()).await?;
        self.changed(call, rpc, &addr.path, detail).await;
        Ok(())
    }

    /// Authorizes `rpc` on the object at `addr`, deletes it and audits it.
    async fn delete_at<R>(&self, call: &Call<R>, rpc: &str, addr: &Addr) -> Result<Response<pb::Empty>, IamError> {
        self.require(call, rpc, &addr.path).await?;
        if !self.iam.db.delete(&addr.key).await? {
            return Err(IamError::NotFound(addr.what.clone()));
        }
        self.changed(call, rpc, &addr.path, "").await;
        Ok(Response::new(pb::Empty {}))
    }

    /// Errors unless the object at `addr` exists.
    async fn ensure<T: FromRecord>(&self, addr: &Addr) -> Result<(), IamError> {
        self.iam.db.fetch::<T>(&addr.key, || addr.what.clone()).await?;
        Ok(())
    }

    /// A user (its org is in its record, so its address is known after reading).
    async fn user(&self, name: &str) -> Result<(Addr, Versioned<User>), IamError> {
        let user: Versioned<User> = self.iam.db.fetch(&Addr::user("", name)?.key, || format!("user {name}")).await?;
        Ok((Addr::user(&user.value.org, name)?, user))
    }

    /// The address of a principal (where its access keys live), checking it exists.
    async fn principal(&self, principal: &str) -> Result<Addr, IamError> {
        match Principal::parse("principal", principal)? {
            Principal::User(name) => Ok(self.user(&name).await?.0),
            Principal::Group { org, name } => {
                let addr = Addr::group(&org, &name)?;
                self.ensure::<Group>(&addr).await?;
                Ok(addr)
            }
            Principal::ServiceAccount { org, project, name } => {
                let addr = Addr::service_account(&org, &project, &name)?;
                self.ensure::<ServiceAccount>(&addr).await?;
                Ok(addr)
            }
        }
    }

    /// Keeps the entries of a list the caller may `get`.
    fn visible<T>(&self, call: &Call<impl Sized>, rpc_get: &str, items: Vec<(String, T)>) -> Vec<T> {
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
    async fn change_group(&self, addr: &Addr, change: impl Fn(&mut Group)) -> Result<Group, IamError> {
        for _ in 0..8 {
            let current = self.iam.db.fetch::<Group>(&addr.key, || addr.what.clone()).await?;
            let mut group = current.value;
            change(&mut group);
            if self.iam.db.update(&addr.key, &group, current.version).await? {
                return Ok(group);
            }
        }
        Err(IamError::Unavailable(format!("{} kept changing; try again", addr.what)))
    }

    async fn after_policy_change(&self) {
        if let Err(e) = self.iam.reload_policies().await {
            tracing::warn!(error = %e, "reloading policies after a change failed; the periodic reload will retry");
        }
    }

    async fn member_change(&self, request: Request<pb::GroupMemberRequest>, rpc: &str, add: bool) -> Reply<pb::Group> {
        let call = self.call(request)?;
        let b = &call.body;
        let addr = Addr::group(&b.org, &b.name)?;
        self.require(&call, rpc, &addr.path).await?;
        if add {
            if matches!(Principal::parse("member", &b.member)?, Principal::Group { .. }) {
                return Err(IamError::invalid("member", "groups do not nest; add users or service accounts").into());
            }
            self.principal(&b.member).await?;
        }
        let member = b.member.clone();
        let group = self
            .change_group(&addr, |g| {
                if add {
                    g.members.insert(member.clone());
                } else {
                    g.members.remove(&member);
                }
            })
            .await?;
        self.changed(&call, rpc, &addr.path, &format!("{} {}", if add { "added" } else { "removed" }, b.member)).await;
        self.after_policy_change().await;
        Ok(Response::new(convert::group(group)))
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn create_org(&self, request: Request<pb::CreateOrgRequest>) -> Reply<pb::Org> {
        let call = self.call(request)?;
        let addr = Addr::org(&call.body.name)?;
        validate_text("display_name", &call.body.display_name, 256)?;
        self.require(&call, "CreateOrg", &addr.path).await?;
        let org = Org { name: call.body.name.clone(), display_name: call.body.display_name.clone(), created_at: now() };
        self.create_at(&call, "CreateOrg", &addr, &org, "").await?;
        Ok(Response::new(convert::org(org)))
    }

    async fn get_org(&self, request: Request<pb::GetOrgRequest>) -> Reply<pb::Org> {
        let call = self.call(request)?;
        let org: Versioned<Org> = self.get_at(&call, "GetOrg", &Addr::org(&call.body.name)?).await?;
        Ok(Response::new(convert::org(org.value)))
    }

    async fn list_orgs(&self, request: Request<pb::ListOrgsRequest>) -> Reply<pb::ListOrgsResponse> {
        let call = self.call(request)?;
        let orgs: Vec<(String, Org)> =
            self.iam.db.list::<Org>("org/").await?.into_iter().map(|(_, o)| (format!("orgs/{}", o.name), o)).collect();
        let orgs = self.visible(&call, "GetOrg", orgs);
        Ok(Response::new(pb::ListOrgsResponse { orgs: orgs.into_iter().map(convert::org).collect() }))
    }

    async fn delete_org(&self, request: Request<pb::DeleteOrgRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let org = call.body.name.clone();
        let addr = Addr::org(&org)?;
        self.require(&call, "DeleteOrg", &addr.path).await?;
        self.ensure::<Org>(&addr).await?;
        let projects = self.iam.db.list::<Project>(&format!("project/{org}/")).await?.len();
        let users = self.iam.db.list::<User>("user/").await?.into_iter().filter(|(_, u)| u.org == org).count();
        let groups = self.iam.db.list::<Group>(&format!("group/{org}/")).await?.len();
        if projects + users + groups > 0 {
            return Err(IamError::FailedPrecondition(format!(
                "org {org} is not empty: {projects} projects, {users} users, {groups} groups"
            ))
            .into());
        }
        Ok(self.delete_at(&call, "DeleteOrg", &addr).await?)
    }

    async fn create_project(&self, request: Request<pb::CreateProjectRequest>) -> Reply<pb::Project> {
        let call = self.call(request)?;
        let b = &call.body;
        let addr = Addr::project(&b.org, &b.name)?;
        validate_text("display_name", &b.display_name, 256)?;
        self.require(&call, "CreateProject", &addr.path).await?;
        self.ensure::<Org>(&Addr::org(&b.org)?).await?;
        let project = Project {
            org: b.org.clone(),
            name: b.name.clone(),
            display_name: b.display_name.clone(),
            created_at: now(),
        };
        self.create_at(&call, "CreateProject", &addr, &project, "").await?;
        Ok(Response::new(convert::project(project)))
    }

    async fn get_project(&self, request: Request<pb::GetProjectRequest>) -> Reply<pb::Project> {
        let call = self.call(request)?;
        let addr = Addr::project(&call.body.org, &call.body.name)?;
        let project: Versioned<Project> = self.get_at(&call, "GetProject", &addr).await?;
        Ok(Response::new(convert::project(project.value)))
    }

    async fn list_projects(&self, request: Request<pb::ListProjectsRequest>) -> Reply<pb::ListProjectsResponse> {
        let call = self.call(request)?;
        let org = Addr::org(&call.body.org)?;
        self.require(&call, "ListProjects", &org.path).await?;
        let projects = self.iam.db.list::<Project>(&format!("project/{}/", call.body.org)).await?;
        Ok(Response::new(pb::ListProjectsResponse {
            projects: projects.into_iter().map(|(_, p)| convert::project(p)).collect(),
        }))
    }

    async fn delete_project(&self, request: Request<pb::DeleteProjectRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let b = &call.body;
        let addr = Addr::project(&b.org, &b.name)?;
        self.require(&call, "DeleteProject", &addr.path).await?;
        let accounts = self.iam.db.list::<ServiceAccount>(&format!("sa/{}/{}/", b.org, b.name)).await?.len();
        if accounts > 0 {
            return Err(
                IamError::FailedPrecondition(format!("{} still has {accounts} service accounts", addr.what)).into()
            );
        }
        Ok(self.delete_at(&call, "DeleteProject", &addr).await?)
    }

    async fn create_user(&self, request: Request<pb::CreateUserRequest>) -> Reply<pb::User> {
        let call = self.call(request)?;
        let b = &call.body;
        let addr = Addr::user(&b.org, &b.name)?;
        validate_text("display_name", &b.display_name, 256)?;
        self.require(&call, "CreateUser", &addr.path).await?;
        if !b.org.is_empty() {
            self.ensure::<Org>(&Addr::org(&b.org)?).await?;
        }
        crate::password::validate(&b.password)?;
        let user = User {
            name: b.name.clone(),
            org: b.org.clone(),
            display_name: b.display_name.clone(),
            password_hash: crate::password::hash(&b.password)?,
            disabled: false,
            created_at: now(),
        };
        self.create_at(&call, "CreateUser", &addr, &user, "").await?;
        Ok(Response::new(convert::user(user)))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Reply<pb::User> {
        let call = self.call(request)?;
        let (addr, user) = self.user(&call.body.name).await?;
        self.require(&call, "GetUser", &addr.path).await?;
        Ok(Response::new(convert::user(user.value)))
    }

    async fn list_users(&self, request: Request<pb::ListUsersRequest>) -> Reply<pb::ListUsersResponse> {
        let call = self.call(request)?;
        let org = call.body.org.clone();
        let scope = if org.is_empty() { SYSTEM.to_string() } else { Addr::org(&org)?.path };
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
        let (addr, current) = self.user(&call.body.name).await?;
        self.require(&call, "UpdateUser", &addr.path).await?;
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
        if !self.iam.db.update(&addr.key, &user, current.version).await? {
            return Err(IamError::FailedPrecondition(format!("{} changed meanwhile; try again", addr.what)).into());
        }
        self.changed(&call, "UpdateUser", &addr.path, &changed.join(", ")).await;
        Ok(Response::new(convert::user(user)))
    }

    async fn delete_user(&self, request: Request<pb::DeleteUserRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let (addr, _) = self.user(&call.body.name).await?;
        Ok(self.delete_at(&call, "DeleteUser", &addr).await?)
    }

    async fn create_group(&self, request: Request<pb::CreateGroupRequest>) -> Reply<pb::Group> {
        let call = self.call(request)?;
        let b = &call.body;
        let addr = Addr::group(&b.org, &b.name)?;
        self.require(&call, "CreateGroup", &addr.path).await?;
        self.ensure::<Org>(&Addr::org(&b.org)?).await?;
        let group = Group { org: b.org.clone(), name: b.name.clone(), members: BTreeSet::new(), created_at: now() };
        self.create_at(&call, "CreateGroup", &addr, &group, "").await?;
        Ok(Response::new(convert::group(group)))
    }

    async fn get_group(&self, request: Request<pb::GetGroupRequest>) -> Reply<pb::Group> {
        let call = self.call(request)?;
        let group: Versioned<Group> =
            self.get_at(&call, "GetGroup", &Addr::group(&call.body.org, &call.body.name)?).await?;
        Ok(Response::new(convert::group(group.value)))
    }

    async fn list_groups(&self, request: Request<pb::ListGroupsRequest>) -> Reply<pb::ListGroupsResponse> {
        let call = self.call(request)?;
        let org = Addr::org(&call.body.org)?;
        self.require(&call, "ListGroups", &org.path).await?;
        let groups = self.iam.db.list::<Group>(&format!("group/{}/", call.body.org)).await?;
        Ok(Response::new(pb::ListGroupsResponse {
            groups: groups.into_iter().map(|(_, g)| convert::group(g)).collect(),
        }))
    }

    async fn add_group_member(&self, request: Request<pb::GroupMemberRequest>) -> Reply<pb::Group> {
        self.member_change(request, "AddGroupMember", true).await
    }

    async fn remove_group_member(&self, request: Request<pb::GroupMemberRequest>) -> Reply<pb::Group> {
        self.member_change(request, "RemoveGroupMember", false).await
    }

    async fn delete_group(&self, request: Request<pb::DeleteGroupRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let reply = self.delete_at(&call, "DeleteGroup", &Addr::group(&call.body.org, &call.body.name)?).await?;
        self.after_policy_change().await;
        Ok(reply)
    }

    async fn create_service_account(
        &self,
        request: Request<pb::CreateServiceAccountRequest>,
    ) -> Reply<pb::ServiceAccount> {
        let call = self.call(request)?;
        let b = &call.body;
        let addr = Addr::service_account(&b.org, &b.project, &b.name)?;
        self.require(&call, "CreateServiceAccount", &addr.path).await?;
        self.ensure::<Project>(&Addr::project(&b.org, &b.project)?).await?;
        let account = ServiceAccount {
            org: b.org.clone(),
            project: b.project.clone(),
            name: b.name.clone(),
            disabled: false,
            created_at: now(),
        };
        self.create_at(&call, "CreateServiceAccount", &addr, &account, "").await?;
        Ok(Response::new(convert::service_account(account)))
    }

    async fn get_service_account(&self, request: Request<pb::GetServiceAccountRequest>) -> Reply<pb::ServiceAccount> {
        let call = self.call(request)?;
        let b = &call.body;
        let addr = Addr::service_account(&b.org, &b.project, &b.name)?;
        let account: Versioned<ServiceAccount> = self.get_at(&call, "GetServiceAccount", &addr).await?;
        Ok(Response::new(convert::service_account(account.value)))
    }

    async fn list_service_accounts(
        &self,
        request: Request<pb::ListServiceAccountsRequest>,
    ) -> Reply<pb::ListServiceAccountsResponse> {
        let call = self.call(request)?;
        let b = &call.body;
        let project = Addr::project(&b.org, &b.project)?;
        self.require(&call, "ListServiceAccounts", &project.path).await?;
        let accounts = self.iam.db.list::<ServiceAccount>(&format!("sa/{}/{}/", b.org, b.project)).await?;
        Ok(Response::new(pb::ListServiceAccountsResponse {
            service_accounts: accounts.into_iter().map(|(_, a)| convert::service_account(a)).collect(),
        }))
    }

    async fn delete_service_account(&self, request: Request<pb::DeleteServiceAccountRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let b = &call.body;
        Ok(self.delete_at(&call, "DeleteServiceAccount", &Addr::service_account(&b.org, &b.project, &b.name)?).await?)
    }

    async fn create_role(&self, request: Request<pb::CreateRoleRequest>) -> Reply<pb::Role> {
        let call = self.call(request)?;
        let b = &call.body;
        let addr = Addr::role_at(&b.scope, &b.name)?;
        if builtin(&b.name).is_some() {
            return Err(IamError::invalid("name", format!("{} is a built-in role", b.name)).into());
        }
        validate_text("description", &b.description, 1024)?;
        if b.permissions.is_empty() || b.permissions.len() > 256 {
            return Err(IamError::invalid("permissions", "list 1 to 256 patterns").into());
        }
        for pattern in &b.permissions {
            validate_pattern(pattern)?;
        }
        self.require(&call, "CreateRole", &addr.path).await?;
        let role = Role {
            scope: b.scope.clone(),
            name: b.name.clone(),
            description: b.description.clone(),
            permissions: b.permissions.clone(),
            created_at: now(),
        };
        self.create_at(&call, "CreateRole", &addr, &role, &role.permissions.join(" ")).await?;
        self.after_policy_change().await;
        Ok(Response::new(convert::role(role)))
    }

    async fn get_role(&self, request: Request<pb::GetRoleRequest>) -> Reply<pb::Role> {
        let call = self.call(request)?;
        let role: Versioned<Role> = self.get_at(&call, "GetRole", &Addr::role(&call.body.id)?).await?;
        Ok(Response::new(convert::role(role.value)))
    }

    async fn list_roles(&self, request: Request<pb::ListRolesRequest>) -> Reply<pb::ListRolesResponse> {
        let call = self.call(request)?;
        let scope = call.body.scope.clone();
        validate_scope("scope", &scope)?;
        self.require(&call, "ListRoles", &scope).await?;
        let roles = self.iam.db.list::<Role>(&format!("role/{}", in_scope(&scope, "roles", ""))).await?;
        Ok(Response::new(pb::ListRolesResponse {
            roles: roles.into_iter().filter(|(_, r)| r.scope == scope).map(|(_, r)| convert::role(r)).collect(),
        }))
    }

    async fn delete_role(&self, request: Request<pb::DeleteRoleRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let addr = Addr::role(&call.body.id)?;
        self.require(&call, "DeleteRole", &addr.path).await?;
        let in_use =
            self.iam.db.list::<Binding>("binding/").await?.into_iter().filter(|(_, b)| b.role == addr.path).count();
        if in_use > 0 {
            return Err(IamError::FailedPrecondition(format!(
                "{} is used by {in_use} bindings; delete them first",
                addr.what
            ))
            .into());
        }
        let reply = self.delete_at(&call, "DeleteRole", &addr).await?;
        self.after_policy_change().await;
        Ok(reply)
    }

    async fn create_binding(&self, request: Request<pb::CreateBindingRequest>) -> Reply<pb::Binding> {
        let call = self.call(request)?;
        let b = &call.body;
        let id = self.iam.new_id()?;
        let addr = Addr::binding(&b.scope, &id)?;
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
            let why = format!(
                "{:?} is neither a built-in role (admin, member, viewer) nor a role defined at or above {}",
                b.role, b.scope
            );
            return Err(IamError::invalid("role", why).into());
        }
        self.require(&call, "CreateBinding", &addr.path).await?;
        if builtin(&b.role).is_none() {
            self.ensure::<Role>(&Addr::role(&b.role)?).await?;
        }
        self.principal(&b.principal).await?;
        let binding = Binding {
            id,
            scope: b.scope.clone(),
            principal: b.principal.clone(),
            role: b.role.clone(),
            effect,
            condition,
            created_at: now(),
        };
        let detail = format!("{} {:?} {}", binding.principal, binding.effect, binding.role);
        self.create_at(&call, "CreateBinding", &addr, &binding, &detail).await?;
        self.after_policy_change().await;
        Ok(Response::new(convert::binding(binding)))
    }

    async fn get_binding(&self, request: Request<pb::GetBindingRequest>) -> Reply<pb::Binding> {
        let call = self.call(request)?;
        let addr = Addr::binding(&call.body.scope, &call.body.id)?;
        let binding: Versioned<Binding> = self.get_at(&call, "GetBinding", &addr).await?;
        Ok(Response::new(convert::binding(binding.value)))
    }

    async fn list_bindings(&self, request: Request<pb::ListBindingsRequest>) -> Reply<pb::ListBindingsResponse> {
        let call = self.call(request)?;
        let scope = call.body.scope.clone();
        validate_scope("scope", &scope)?;
        self.require(&call, "ListBindings", &scope).await?;
        let bindings = self.iam.db.list::<Binding>(&format!("binding/{}", in_scope(&scope, "bindings", ""))).await?;
        Ok(Response::new(pb::ListBindingsResponse {
            bindings: bindings
                .into_iter()
                .filter(|(_, b)| b.scope == scope)
                .map(|(_, b)| convert::binding(b))
                .collect(),
        }))
    }

    async fn delete_binding(&self, request: Request<pb::DeleteBindingRequest>) -> Reply<pb::Empty> {
        let call = self.call(request)?;
        let reply = self.delete_at(&call, "DeleteBinding", &Addr::binding(&call.body.scope, &call.body.id)?).await?;
        self.after_policy_change().await;
        Ok(reply)
    }

    async fn create_access_key(&self, request: Request<pb::CreateAccessKeyRequest>) -> Reply<pb::AccessKeyWithSecret> {
        let call = self.call(request)?;
        if matches!(Principal::parse("principal", &call.body.principal)?, Principal::Group { .. }) {
            return Err(IamError::invalid("principal", "access keys belong to users or service accounts").into());
        }
        let owner = self.principal(&call.body.principal).await?;
        let key_id = format!("PK{}", crate::secrets::hex(&self.iam.server_key.random(9)?).to_uppercase());
        let addr = Addr::access_key(&owner.path, &key_id)?;
        self.require(&call, "CreateAccessKey", &addr.path).await?;
        let secret = URL_SAFE_NO_PAD.encode(self.iam.server_key.random(30)?);
        let key = AccessKey {
            key_id,
            principal: call.body.principal.clone(),
            sealed_secret: self.iam.server_key.seal(secret.as_bytes())?,
            disabled: false,
            created_at: now(),
        };
        self.create_at(&call, "CreateAccessKey", &addr, &key, "").await?;
        Ok(Response::new(pb::AccessKeyWithSecret { key: Some(convert::access_key(key)), secret }))
    }

    async fn list_access_keys(&self, request: Request<pb::ListAccessKeysRequest>) -> Reply<pb::ListAccessKeysResponse> {
        let call = self.call(request)?;
        let owner = self.principal(&call.body.principal).await?;
        self.require(&call, "ListAccessKeys", &owner.path).await?;
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
        let key_id = call.body.key_id.clone();
        let found = Addr::access_key("", &key_id)?;
        let key = self.iam.db.fetch::<AccessKey>(&found.key, || found.what.clone()).await?;
        let addr = Addr::access_key(&self.principal(&key.value.principal).await?.path, &key_id)?;
        Ok(self.delete_at(&call, "DeleteAccessKey", &addr).await?)
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
