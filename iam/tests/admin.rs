//! Admin and Authorize over the wire: authorization tables with groups, custom roles,
//! wildcards, explicit denies and conditions; the audit log; bad input (malformed tokens,
//! oversized and invalid fields, duplicate names, unknown ids) answered clearly with nothing
//! half-written; REST admin routes.

mod common;

use common::{bearer, Env};
use photon_api::iam::v1 as pb;
use tonic::Code;

async fn user(env: &Env, root: &str, org: &str, name: &str) -> String {
    let create = pb::CreateUserRequest {
        org: org.into(),
        name: name.into(),
        display_name: String::new(),
        password: format!("{name}-long-password"),
    };
    env.admin().create_user(bearer(root, create)).await.unwrap();
    env.login(name, &format!("{name}-long-password")).await.unwrap().access_token
}

async fn bind(
    env: &Env,
    root: &str,
    scope: &str,
    principal: &str,
    role: &str,
    effect: &str,
    condition: Option<pb::Condition>,
) {
    let create = pb::CreateBindingRequest {
        scope: scope.into(),
        principal: principal.into(),
        role: role.into(),
        effect: effect.into(),
        condition,
    };
    env.admin().create_binding(bearer(root, create)).await.unwrap();
}

#[tokio::test]
async fn authorize_over_grpc_follows_groups_roles_denies_and_conditions() {
    let env = Env::start(&[]).await;
    let root = env.admin_token().await;
    let mut admin = env.admin();
    env.org(&root, "acme", &["web", "vault"]).await;
    let carol = user(&env, &root, "acme", "carol").await;
    let dave = user(&env, &root, "acme", "dave").await;
    admin.create_group(bearer(&root, pb::CreateGroupRequest { org: "acme".into(), name: "ops".into() })).await.unwrap();
    let member = pb::GroupMemberRequest { org: "acme".into(), name: "ops".into(), member: "user:carol".into() };
    admin.add_group_member(bearer(&root, member)).await.unwrap();
    let role = pb::CreateRoleRequest {
        scope: "orgs/acme".into(),
        name: "vm-operator".into(),
        description: "start and stop VMs".into(),
        permissions: vec!["plasmavmc:instances:*".into(), "!plasmavmc:instances:delete".into()],
    };
    let role = admin.create_role(bearer(&root, role)).await.unwrap().into_inner().id;
    bind(&env, &root, "orgs/acme", "group:acme/ops", &role, "allow", None).await;
    bind(&env, &root, "orgs/acme/projects/vault", "group:acme/ops", "admin", "deny", None).await;
    let office = pb::Condition { source_cidrs: vec!["10.0.0.0/8".into()], ..Default::default() };
    bind(&env, &root, "orgs/acme/projects/web", "user:dave", "viewer", "allow", Some(office)).await;

    let ask = |token: &str, action: &str, resource: &str, source: &str| {
        let request = bearer(
            token,
            pb::AuthorizeRequest {
                principal: String::new(),
                action: action.into(),
                resource: resource.into(),
                context: Some(pb::AuthorizeContext { source_ip: source.into(), resource_labels: Default::default() }),
            },
        );
        let mut authz = env.authz();
        async move { authz.authorize(request).await.map(|r| r.into_inner()) }
    };
    #[rustfmt::skip]
    let table: &[(&str, &str, &str, &str, bool)] = &[
        (&carol, "plasmavmc:instances:start", "orgs/acme/projects/web/instances/vm1", "", true),
        (&carol, "plasmavmc:instances:delete", "orgs/acme/projects/web/instances/vm1", "", false),
        (&carol, "plasmavmc:volumes:create", "orgs/acme/projects/web", "", false),
        (&carol, "plasmavmc:instances:start", "orgs/acme/projects/vault/instances/x", "", false),
        (&carol, "plasmavmc:instances:start", "orgs/other/projects/web", "", false),
        (&dave, "lightningstor:buckets:list", "orgs/acme/projects/web", "10.1.1.1", true),
        (&dave, "lightningstor:buckets:list", "orgs/acme/projects/web", "192.168.1.1", false),
        (&dave, "lightningstor:buckets:create", "orgs/acme/projects/web", "10.1.1.1", false),
        (&root, "anything:at:all", "orgs/acme/projects/vault", "", true),
    ];
    for (token, action, resource, source, allowed) in table {
        let answer = ask(token, action, resource, source).await.unwrap();
        assert_eq!(answer.allowed, *allowed, "{action} on {resource} from {source:?}: {}", answer.reason);
    }
    let denied = ask(&carol, "plasmavmc:instances:start", "orgs/acme/projects/vault", "").await.unwrap();
    assert!(denied.reason.contains("denied") && !denied.matched_binding.is_empty(), "{denied:?}");

    // BatchAuthorize answers in order; asking for another principal needs a system grant.
    let batch = pb::BatchAuthorizeRequest {
        requests: vec![
            pb::AuthorizeRequest {
                action: "plasmavmc:instances:start".into(),
                resource: "orgs/acme".into(),
                ..Default::default()
            },
            pb::AuthorizeRequest {
                action: "plasmavmc:instances:delete".into(),
                resource: "orgs/acme".into(),
                ..Default::default()
            },
        ],
    };
    let answers = env.authz().batch_authorize(bearer(&carol, batch)).await.unwrap().into_inner().responses;
    assert_eq!(answers.iter().map(|a| a.allowed).collect::<Vec<_>>(), [true, false]);
    let for_dave = pb::AuthorizeRequest {
        principal: "user:dave".into(),
        action: "lightningstor:buckets:list".into(),
        resource: "orgs/acme/projects/web".into(),
        context: Some(pb::AuthorizeContext { source_ip: "10.0.0.1".into(), resource_labels: Default::default() }),
    };
    assert_eq!(
        env.authz().authorize(bearer(&carol, for_dave.clone())).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    assert!(env.authz().authorize(bearer(&root, for_dave)).await.unwrap().into_inner().allowed);

    // The audit log has the changes and carol's denial (the one with a PermissionDenied answer).
    let audit = admin
        .query_audit(bearer(&root, pb::QueryAuditRequest { scope: "orgs/acme".into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(audit.iter().any(|e| e.outcome == "ok" && e.action == "iam:roles:create"), "{audit:?}");
    assert!(audit.iter().any(|e| e.outcome == "denied" && e.principal == "user:carol"), "{audit:?}");
    assert!(audit.windows(2).all(|w| w[0].at_ms >= w[1].at_ms), "newest first");
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let env = Env::start(&[]).await;
    let root = env.admin_token().await;
    let mut admin = env.admin();
    env.org(&root, "acme", &[]).await;

    // Malformed and missing tokens.
    for token in ["", "x", "a.b.c", &"e".repeat(9000)] {
        let refused = admin.list_orgs(bearer(token, pb::ListOrgsRequest {})).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{token:.20}: {refused:?}");
    }
    assert_eq!(admin.list_orgs(pb::ListOrgsRequest {}).await.unwrap_err().code(), Code::Unauthenticated);

    // Invalid and oversized names, duplicates, unknown ids: each named, nothing written.
    let cases: Vec<(pb::CreateOrgRequest, Code, &str)> = vec![
        (pb::CreateOrgRequest { name: "".into(), display_name: String::new() }, Code::InvalidArgument, "name"),
        (pb::CreateOrgRequest { name: "Acme".into(), display_name: String::new() }, Code::InvalidArgument, "name"),
        (pb::CreateOrgRequest { name: "a".repeat(64), display_name: String::new() }, Code::InvalidArgument, "name"),
        (pb::CreateOrgRequest { name: "acme".into(), display_name: String::new() }, Code::AlreadyExists, "org acme"),
        (
            pb::CreateOrgRequest { name: "big".into(), display_name: "x".repeat(100_000) },
            Code::InvalidArgument,
            "display_name",
        ),
    ];
    for (request, code, mentions) in cases {
        let refused = admin.create_org(bearer(&root, request.clone())).await.unwrap_err();
        assert_eq!(refused.code(), code, "{request:?}: {refused:?}");
        assert!(refused.message().contains(mentions), "{}", refused.message());
    }
    let orgs = admin.list_orgs(bearer(&root, pb::ListOrgsRequest {})).await.unwrap().into_inner().orgs;
    assert_eq!(orgs.len(), 1);

    let weak = pb::CreateUserRequest {
        org: "acme".into(),
        name: "eve".into(),
        display_name: String::new(),
        password: "short".into(),
    };
    let refused = admin.create_user(bearer(&root, weak)).await.unwrap_err();
    assert!(refused.message().contains("password"), "{}", refused.message());
    assert_eq!(
        admin.get_user(bearer(&root, pb::GetUserRequest { name: "eve".into() })).await.unwrap_err().code(),
        Code::NotFound
    );
    let orphan = pb::CreateUserRequest {
        org: "nowhere".into(),
        name: "eve".into(),
        display_name: String::new(),
        password: "eve-long-password".into(),
    };
    assert_eq!(admin.create_user(bearer(&root, orphan)).await.unwrap_err().code(), Code::NotFound);

    let bad_bindings = [
        pb::CreateBindingRequest {
            scope: "orgs".into(),
            principal: "user:admin".into(),
            role: "admin".into(),
            ..Default::default()
        },
        pb::CreateBindingRequest {
            scope: "orgs/acme".into(),
            principal: "admin".into(),
            role: "admin".into(),
            ..Default::default()
        },
        pb::CreateBindingRequest {
            scope: "orgs/acme".into(),
            principal: "user:admin".into(),
            role: "superuser".into(),
            ..Default::default()
        },
        pb::CreateBindingRequest {
            scope: "orgs/acme".into(),
            principal: "user:admin".into(),
            role: "admin".into(),
            effect: "maybe".into(),
            ..Default::default()
        },
        pb::CreateBindingRequest {
            scope: "orgs/acme".into(),
            principal: "user:admin".into(),
            role: "admin".into(),
            condition: Some(pb::Condition { source_cidrs: vec!["10.0.0.0/40".into()], ..Default::default() }),
            ..Default::default()
        },
        pb::CreateBindingRequest {
            scope: "orgs/acme".into(),
            principal: "user:ghost".into(),
            role: "admin".into(),
            ..Default::default()
        },
    ];
    for request in bad_bindings {
        let refused = admin.create_binding(bearer(&root, request.clone())).await.unwrap_err();
        assert!(matches!(refused.code(), Code::InvalidArgument | Code::NotFound), "{request:?}: {refused:?}");
    }
    let bindings = admin
        .list_bindings(bearer(&root, pb::ListBindingsRequest { scope: "orgs/acme".into() }))
        .await
        .unwrap()
        .into_inner();
    assert!(bindings.bindings.is_empty(), "no binding was half-written: {bindings:?}");
    let bad_role = pb::CreateRoleRequest {
        scope: "orgs/acme".into(),
        name: "r".into(),
        description: String::new(),
        permissions: vec!["plasmavmc:instances".into()],
    };
    let refused = admin.create_role(bearer(&root, bad_role)).await.unwrap_err();
    assert!(refused.message().contains("permissions"), "{}", refused.message());
    for id in ["orgs/acme/roles/missing", "nonsense"] {
        let refused = admin.get_role(bearer(&root, pb::GetRoleRequest { id: id.into() })).await.unwrap_err();
        assert!(matches!(refused.code(), Code::NotFound | Code::InvalidArgument), "{id}: {refused:?}");
    }
    let refused = admin
        .delete_access_key(bearer(&root, pb::DeleteAccessKeyRequest { key_id: "PKNOPE".into() }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let refused = admin.delete_org(bearer(&root, pb::DeleteOrgRequest { name: "ghost".into() })).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);

    // A non-empty org is not deleted.
    let project = pb::CreateProjectRequest { org: "acme".into(), name: "web".into(), display_name: String::new() };
    admin.create_project(bearer(&root, project)).await.unwrap();
    let refused = admin.delete_org(bearer(&root, pb::DeleteOrgRequest { name: "acme".into() })).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // REST: the same rules, as HTTP.
    let auth = format!("authorization: Bearer {root}");
    let (code, body) = env.iam.curl("POST", "/api/v1/orgs", Some(r#"{"name":"beta"}"#), &[&auth]);
    assert_eq!((code, body["name"].as_str()), (200, Some("beta")), "{body}");
    let (code, body) = env.iam.curl("POST", "/api/v1/orgs", Some(r#"{"name":"beta"}"#), &[&auth]);
    assert_eq!((code, body["error"]["code"].as_str()), (409, Some("already_exists")), "{body}");
    let (code, body) = env.iam.curl("POST", "/api/v1/orgs", Some(r#"{"name": 7}"#), &[&auth]);
    assert_eq!(code, 400, "{body}");
    let (code, body) = env.iam.curl("POST", "/api/v1/orgs", Some("{not json"), &[&auth]);
    assert_eq!(code, 400, "{body}");
    let (code, _) = env.iam.curl("GET", "/api/v1/orgs", None, &[]);
    assert_eq!(code, 401);
    let (code, body) = env.iam.curl("GET", "/api/v1/orgs/beta/projects", None, &[&auth]);
    assert_eq!((code, body["projects"].as_array().map(|a| a.len())), (200, Some(0)), "{body}");

    // An access key's secret is shown once and logs in; the listing never shows it.
    let sa = pb::CreateServiceAccountRequest { org: "acme".into(), project: "web".into(), name: "ci".into() };
    admin.create_service_account(bearer(&root, sa)).await.unwrap();
    let key =
        admin.create_access_key(bearer(&root, pb::CreateAccessKeyRequest { principal: "sa:acme/web/ci".into() })).await;
    let key = key.unwrap().into_inner();
    let (code, body) = env.iam.curl(
        "POST",
        "/api/v1/auth/token",
        Some(&format!(r#"{{"key_id":"{}","secret":"{}"}}"#, key.key.as_ref().unwrap().key_id, key.secret)),
        &[],
    );
    assert_eq!((code, body["principal"].as_str()), (200, Some("sa:acme/web/ci")), "{body}");
    let (_, listed) = env.iam.curl("GET", "/api/v1/access-keys?principal=sa:acme/web/ci", None, &[&auth]);
    assert!(!listed.to_string().contains(&key.secret), "{listed}");
}
