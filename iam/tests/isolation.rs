//! Tenant isolation: an administrator of org A can never read or change org B's objects through
//! any RPC. The cases are driven by the proto itself: an RPC added without a case here fails the
//! test, so every new call gets its isolation checked.

mod common;

use common::{bearer, Env};
use photon_api::iam::v1 as pb;
use tonic::Code;

const PROTO: &str = include_str!("../../crates/photon-api/proto/photon/iam/v1/iam.proto");

/// The RPC names of every service in the proto.
fn rpcs() -> Vec<String> {
    PROTO
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .map(|l| l.split('(').next().unwrap_or_default().trim().to_string())
        .collect()
}

async fn setup(env: &Env) -> (String, String, String, String) {
    let root = env.admin_token().await;
    let mut admin = env.admin();
    for org in ["a", "b"] {
        env.org(&root, org, &["p"]).await;
    }
    for (user, org) in [("alice", "a"), ("bob", "b")] {
        let create = pb::CreateUserRequest {
            org: org.into(),
            name: user.into(),
            display_name: String::new(),
            password: format!("{user}-long-password"),
        };
        admin.create_user(bearer(&root, create)).await.unwrap();
        let binding = pb::CreateBindingRequest {
            scope: format!("orgs/{org}"),
            principal: format!("user:{user}"),
            role: "admin".into(),
            ..Default::default()
        };
        admin.create_binding(bearer(&root, binding)).await.unwrap();
    }
    let bob = env.login("bob", "bob-long-password").await.unwrap().access_token;
    // Org B's objects, made by its own administrator.
    admin.create_group(bearer(&bob, pb::CreateGroupRequest { org: "b".into(), name: "g".into() })).await.unwrap();
    let sa = pb::CreateServiceAccountRequest { org: "b".into(), project: "p".into(), name: "sa".into() };
    admin.create_service_account(bearer(&bob, sa)).await.unwrap();
    let role = pb::CreateRoleRequest {
        scope: "orgs/b".into(),
        name: "r".into(),
        description: String::new(),
        permissions: vec!["plasmavmc:*:*".into()],
    };
    let role_id = admin.create_role(bearer(&bob, role)).await.unwrap().into_inner().id;
    let binding = pb::CreateBindingRequest {
        scope: "orgs/b/projects/p".into(),
        principal: "sa:b/p/sa".into(),
        role: role_id,
        ..Default::default()
    };
    let binding_id = admin.create_binding(bearer(&bob, binding)).await.unwrap().into_inner().id;
    let key = admin
        .create_access_key(bearer(&bob, pb::CreateAccessKeyRequest { principal: "sa:b/p/sa".into() }))
        .await
        .unwrap();
    let key_id = key.into_inner().key.unwrap().key_id;
    let alice = env.login("alice", "alice-long-password").await.unwrap().access_token;
    (alice, bob, binding_id, key_id)
}

#[tokio::test]
async fn an_org_admin_cannot_touch_another_orgs_objects_through_any_rpc() {
    let env = Env::start(&[]).await;
    let (alice, bob, binding_id, key_id) = setup(&env).await;
    macro_rules! t {
        ($m:expr) => {
            bearer(&alice, $m)
        };
    }
    let (mut admin, mut tokens, mut authz) = (env.admin(), env.tokens(), env.authz());
    let member = || pb::GroupMemberRequest { org: "b".into(), name: "g".into(), member: "user:alice".into() };
    let sa = |name: &str| (String::from("b"), String::from("p"), name.to_string());

    let mut checked = Vec::new();
    for rpc in rpcs() {
        let refused: Result<(), tonic::Status> = match rpc.as_str() {
            "CreateOrg" => admin
                .create_org(t!(pb::CreateOrgRequest { name: "c".into(), display_name: String::new() }))
                .await
                .map(|_| ()),
            "GetOrg" => admin.get_org(t!(pb::GetOrgRequest { name: "b".into() })).await.map(|_| ()),
            "ListOrgs" => {
                let orgs = admin.list_orgs(t!(pb::ListOrgsRequest {})).await.unwrap().into_inner().orgs;
                let names: Vec<String> = orgs.into_iter().map(|o| o.name).collect();
                assert_eq!(names, ["a"], "ListOrgs shows only what the caller may see");
                checked.push(rpc);
                continue;
            }
            "DeleteOrg" => admin.delete_org(t!(pb::DeleteOrgRequest { name: "b".into() })).await.map(|_| ()),
            "CreateProject" => admin
                .create_project(t!(pb::CreateProjectRequest {
                    org: "b".into(),
                    name: "x".into(),
                    display_name: String::new(),
                }))
                .await
                .map(|_| ()),
            "GetProject" => {
                admin.get_project(t!(pb::GetProjectRequest { org: "b".into(), name: "p".into() })).await.map(|_| ())
            }
            "ListProjects" => admin.list_projects(t!(pb::ListProjectsRequest { org: "b".into() })).await.map(|_| ()),
            "DeleteProject" => admin
                .delete_project(t!(pb::DeleteProjectRequest { org: "b".into(), name: "p".into() }))
                .await
                .map(|_| ()),
            "CreateUser" => admin
                .create_user(t!(pb::CreateUserRequest {
                    org: "b".into(),
                    name: "mallory".into(),
                    display_name: String::new(),
                    password: "mallory-long-password".into(),
                }))
                .await
                .map(|_| ()),
            "GetUser" => admin.get_user(t!(pb::GetUserRequest { name: "bob".into() })).await.map(|_| ()),
            "ListUsers" => admin.list_users(t!(pb::ListUsersRequest { org: "b".into() })).await.map(|_| ()),
            "UpdateUser" => admin
                .update_user(t!(pb::UpdateUserRequest {
                    name: "bob".into(),
                    password: Some("stolen-long-password".into()),
                    disabled: None,
                }))
                .await
                .map(|_| ()),
            "DeleteUser" => admin.delete_user(t!(pb::DeleteUserRequest { name: "bob".into() })).await.map(|_| ()),
            "CreateGroup" => {
                admin.create_group(t!(pb::CreateGroupRequest { org: "b".into(), name: "x".into() })).await.map(|_| ())
            }
            "GetGroup" => {
                admin.get_group(t!(pb::GetGroupRequest { org: "b".into(), name: "g".into() })).await.map(|_| ())
            }
            "ListGroups" => admin.list_groups(t!(pb::ListGroupsRequest { org: "b".into() })).await.map(|_| ()),
            "AddGroupMember" => admin.add_group_member(t!(member())).await.map(|_| ()),
            "RemoveGroupMember" => admin.remove_group_member(t!(member())).await.map(|_| ()),
            "DeleteGroup" => {
                admin.delete_group(t!(pb::DeleteGroupRequest { org: "b".into(), name: "g".into() })).await.map(|_| ())
            }
            "CreateServiceAccount" => {
                let (org, project, name) = sa("x");
                admin
                    .create_service_account(t!(pb::CreateServiceAccountRequest { org, project, name }))
                    .await
                    .map(|_| ())
            }
            "GetServiceAccount" => {
                let (org, project, name) = sa("sa");
                admin.get_service_account(t!(pb::GetServiceAccountRequest { org, project, name })).await.map(|_| ())
            }
            "ListServiceAccounts" => admin
                .list_service_accounts(t!(pb::ListServiceAccountsRequest { org: "b".into(), project: "p".into() }))
                .await
                .map(|_| ()),
            "DeleteServiceAccount" => {
                let (org, project, name) = sa("sa");
                admin
                    .delete_service_account(t!(pb::DeleteServiceAccountRequest { org, project, name }))
                    .await
                    .map(|_| ())
            }
            "CreateRole" => admin
                .create_role(t!(pb::CreateRoleRequest {
                    scope: "orgs/b".into(),
                    name: "x".into(),
                    description: String::new(),
                    permissions: vec!["*".into()],
                }))
                .await
                .map(|_| ()),
            "GetRole" => admin.get_role(t!(pb::GetRoleRequest { id: "orgs/b/roles/r".into() })).await.map(|_| ()),
            "ListRoles" => admin.list_roles(t!(pb::ListRolesRequest { scope: "orgs/b".into() })).await.map(|_| ()),
            "DeleteRole" => {
                admin.delete_role(t!(pb::DeleteRoleRequest { id: "orgs/b/roles/r".into() })).await.map(|_| ())
            }
            "CreateBinding" => admin
                .create_binding(t!(pb::CreateBindingRequest {
                    scope: "orgs/b".into(),
                    principal: "user:alice".into(),
                    role: "admin".into(),
                    ..Default::default()
                }))
                .await
                .map(|_| ()),
            "GetBinding" => admin
                .get_binding(t!(pb::GetBindingRequest { scope: "orgs/b/projects/p".into(), id: binding_id.clone() }))
                .await
                .map(|_| ()),
            "ListBindings" => {
                admin.list_bindings(t!(pb::ListBindingsRequest { scope: "orgs/b".into() })).await.map(|_| ())
            }
            "DeleteBinding" => admin
                .delete_binding(t!(pb::DeleteBindingRequest {
                    scope: "orgs/b/projects/p".into(),
                    id: binding_id.clone(),
                }))
                .await
                .map(|_| ()),
            "CreateAccessKey" => admin
                .create_access_key(t!(pb::CreateAccessKeyRequest { principal: "sa:b/p/sa".into() }))
                .await
                .map(|_| ()),
            "ListAccessKeys" => admin
                .list_access_keys(t!(pb::ListAccessKeysRequest { principal: "sa:b/p/sa".into() }))
                .await
                .map(|_| ()),
            "DeleteAccessKey" => {
                admin.delete_access_key(t!(pb::DeleteAccessKeyRequest { key_id: key_id.clone() })).await.map(|_| ())
            }
            "QueryAudit" => admin
                .query_audit(t!(pb::QueryAuditRequest { scope: "orgs/b".into(), ..Default::default() }))
                .await
                .map(|_| ()),
            "RotateSigningKey" => admin.rotate_signing_key(t!(pb::RotateSigningKeyRequest {})).await.map(|_| ()),
            "IssueToken" => {
                // With org B's access key but not its secret: refused like any wrong secret.
                let credentials = pb::issue_token_request::Credentials::AccessKey(pb::AccessKeyCredentials {
                    key_id: key_id.clone(),
                    secret: "guessed".into(),
                });
                let refused =
                    tokens.issue_token(pb::IssueTokenRequest { credentials: Some(credentials) }).await.unwrap_err();
                assert_eq!(refused.code(), Code::Unauthenticated);
                checked.push(rpc);
                continue;
            }
            "RefreshToken" => {
                // Alice's own access token is not a refresh token for anyone.
                let refused =
                    tokens.refresh_token(pb::RefreshTokenRequest { refresh_token: alice.clone() }).await.unwrap_err();
                assert_eq!(refused.code(), Code::Unauthenticated);
                checked.push(rpc);
                continue;
            }
            "RevokeToken" => tokens.revoke_token(t!(pb::RevokeTokenRequest { token: bob.clone() })).await.map(|_| ()),
            "ValidateToken" => {
                // Validation tells anyone what a valid token says (the token is the secret).
                checked.push(rpc);
                continue;
            }
            "Authorize" => authz
                .authorize(t!(pb::AuthorizeRequest {
                    principal: "user:bob".into(),
                    action: "plasmavmc:instances:get".into(),
                    resource: "orgs/b".into(),
                    context: None,
                }))
                .await
                .map(|_| ()),
            "BatchAuthorize" => authz
                .batch_authorize(t!(pb::BatchAuthorizeRequest {
                    requests: vec![pb::AuthorizeRequest {
                        principal: "user:bob".into(),
                        action: "plasmavmc:instances:get".into(),
                        resource: "orgs/b".into(),
                        context: None,
                    }],
                }))
                .await
                .map(|_| ()),
            "ResolveAccessKey" => {
                authz.resolve_access_key(t!(pb::ResolveAccessKeyRequest { key_id: key_id.clone() })).await.map(|_| ())
            }
            "Ping" => {
                checked.push(rpc);
                continue;
            }
            other => panic!("no isolation case for {other}: add one to this test"),
        };
        let status = refused.expect_err(&format!("{rpc} let org A's admin reach org B"));
        assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
        checked.push(rpc);
    }
    assert!(checked.len() >= 44, "every RPC was checked: {checked:?}");

    // Nothing of B's changed, and alice's own org works (the denials were about B).
    let root = env.admin_token().await;
    assert!(env.login("bob", "bob-long-password").await.is_ok());
    let group =
        admin.get_group(bearer(&root, pb::GetGroupRequest { org: "b".into(), name: "g".into() })).await.unwrap();
    assert!(group.into_inner().members.is_empty());
    admin.create_group(t!(pb::CreateGroupRequest { org: "a".into(), name: "mine".into() })).await.unwrap();
    let audit = admin
        .query_audit(bearer(&root, pb::QueryAuditRequest { scope: "orgs/b".into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let denied = audit.iter().filter(|e| e.outcome == "denied" && e.principal == "user:alice").count();
    assert!(denied >= 20, "alice's denials are in B's audit log: {denied}");
}

const REST: &str = include_str!("../src/rest.rs");

/// (METHOD, path template) of every REST route, read from the router's source.
fn routes() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for chunk in REST.split(".route(").skip(1) {
        let Some(path) = chunk.split('"').nth(1) else { continue };
        let handlers = chunk.split(")\n").next().unwrap_or_default();
        for method in ["get", "post", "delete", "patch", "put"] {
            let called = handlers.contains(&format!(" {method}("))
                || handlers.contains(&format!(".{method}("))
                || handlers.contains(&format!("routing::{method}("));
            if called {
                out.push((method.to_uppercase(), path.to_string()));
            }
        }
    }
    out
}

#[tokio::test]
async fn an_org_admin_cannot_touch_another_orgs_objects_through_any_rest_route() {
    let env = Env::start(&[]).await;
    let (alice, _bob, binding_id, key_id) = setup(&env).await;
    let auth = format!("authorization: Bearer {alice}");
    let call = |method: &str, path: &str, body: Option<&str>| env.iam.curl(method, path, body, &[&auth]);
    let binding = format!("/api/v1/bindings/{binding_id}?scope=orgs/b/projects/p");
    let key = format!("/api/v1/access-keys/{key_id}");
    let mut covered = Vec::new();
    for (method, template) in routes() {
        let cases: Vec<(String, Option<String>)> = match (method.as_str(), template.as_str()) {
            ("POST", "/api/v1/auth/token") => {
                let body = format!(r#"{{"key_id":"{key_id}","secret":"guessed"}}"#);
                let (code, answer) = env.iam.curl("POST", &template, Some(&body), &[]);
                assert_eq!(code, 401, "{answer}");
                covered.push((method, template));
                continue;
            }
            ("GET", "/api/v1/auth/whoami") => {
                let (code, me) = call("GET", &template, None);
                assert_eq!((code, me["principal"].as_str()), (200, Some("user:alice")));
                covered.push((method, template));
                continue;
            }
            ("GET", "/.well-known/jwks.json" | "/.well-known/openid-configuration") => {
                covered.push((method, template)); // Public documents, the same for everyone.
                continue;
            }
            ("GET", "/api/v1/orgs") => {
                let (code, orgs) = call("GET", &template, None);
                let names: Vec<&str> =
                    orgs["orgs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
                assert_eq!((code, names), (200, vec!["a"]));
                covered.push((method, template));
                continue;
            }
            ("POST", "/api/v1/orgs") => vec![("/api/v1/orgs".into(), Some(r#"{"name":"c"}"#.into()))],
            (_, "/api/v1/orgs/{org}") => vec![("/api/v1/orgs/b".into(), None)],
            ("GET", "/api/v1/orgs/{org}/projects") => vec![("/api/v1/orgs/b/projects".into(), None)],
            ("POST", "/api/v1/orgs/{org}/projects") => {
                vec![("/api/v1/orgs/b/projects".into(), Some(r#"{"name":"x"}"#.into()))]
            }
            (_, "/api/v1/orgs/{org}/projects/{project}") => vec![("/api/v1/orgs/b/projects/p".into(), None)],
            ("GET", "/api/v1/users") => vec![("/api/v1/users?org=b".into(), None)],
            ("POST", "/api/v1/users") => {
                vec![(
                    "/api/v1/users".into(),
                    Some(r#"{"org":"b","name":"mallory","password":"mallory-long-password"}"#.into()),
                )]
            }
            ("PATCH", "/api/v1/users/{name}") => {
                vec![("/api/v1/users/bob".into(), Some(r#"{"disabled":true}"#.into()))]
            }
            (_, "/api/v1/users/{name}") => vec![("/api/v1/users/bob".into(), None)],
            ("GET", "/api/v1/orgs/{org}/groups") => vec![("/api/v1/orgs/b/groups".into(), None)],
            ("POST", "/api/v1/orgs/{org}/groups") => {
                vec![("/api/v1/orgs/b/groups".into(), Some(r#"{"name":"x"}"#.into()))]
            }
            (_, "/api/v1/orgs/{org}/groups/{name}") => vec![("/api/v1/orgs/b/groups/g".into(), None)],
            ("POST", "/api/v1/orgs/{org}/groups/{name}/members") => {
                vec![("/api/v1/orgs/b/groups/g/members".into(), Some(r#"{"member":"user:alice"}"#.into()))]
            }
            (_, "/api/v1/orgs/{org}/groups/{name}/members/{member}") => {
                vec![("/api/v1/orgs/b/groups/g/members/user:bob".into(), None)]
            }
            ("GET", "/api/v1/orgs/{org}/projects/{project}/service-accounts") => {
                vec![("/api/v1/orgs/b/projects/p/service-accounts".into(), None)]
            }
            ("POST", "/api/v1/orgs/{org}/projects/{project}/service-accounts") => {
                vec![("/api/v1/orgs/b/projects/p/service-accounts".into(), Some(r#"{"name":"x"}"#.into()))]
            }
            (_, "/api/v1/orgs/{org}/projects/{project}/service-accounts/{name}") => {
                vec![("/api/v1/orgs/b/projects/p/service-accounts/sa".into(), None)]
            }
            ("GET", "/api/v1/bindings") => vec![("/api/v1/bindings?scope=orgs/b".into(), None)],
            ("POST", "/api/v1/bindings") => {
                vec![(
                    "/api/v1/bindings".into(),
                    Some(r#"{"scope":"orgs/b","principal":"user:alice","role":"admin"}"#.into()),
                )]
            }
            (_, "/api/v1/bindings/{id}") => vec![(binding.clone(), None)],
            ("GET", "/api/v1/roles") => vec![("/api/v1/roles?scope=orgs/b".into(), None)],
            ("POST", "/api/v1/roles") => {
                vec![("/api/v1/roles".into(), Some(r#"{"scope":"orgs/b","name":"x","permissions":["*"]}"#.into()))]
            }
            (_, "/api/v1/roles/{*id}") => vec![("/api/v1/roles/orgs/b/roles/r".into(), None)],
            ("GET", "/api/v1/access-keys") => vec![("/api/v1/access-keys?principal=sa:b/p/sa".into(), None)],
            ("POST", "/api/v1/access-keys") => {
                vec![("/api/v1/access-keys".into(), Some(r#"{"principal":"sa:b/p/sa"}"#.into()))]
            }
            (_, "/api/v1/access-keys/{key_id}") => vec![(key.clone(), None)],
            ("POST", "/api/v1/signing-keys/rotate") => vec![(template.clone(), None)],
            ("GET", "/api/v1/audit") => vec![("/api/v1/audit?scope=orgs/b".into(), None)],
            other => panic!("no isolation case for REST route {other:?}: add one to this test"),
        };
        for (path, body) in cases {
            let (code, answer) = call(&method, &path, body.as_deref());
            assert_eq!(
                (code, answer["error"]["code"].as_str()),
                (403, Some("permission_denied")),
                "{method} {path}: {answer}"
            );
        }
        covered.push((method, template));
    }
    assert!(covered.len() >= 40, "every route was checked: {covered:?}");
    // Nothing of B's changed.
    assert!(env.login("bob", "bob-long-password").await.is_ok());
}
