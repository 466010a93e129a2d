//! REST on the API port: the token endpoint, OIDC discovery and JWKS, `whoami`, and the admin
//! resources as `/api/v1/...` routes. Admin routes adapt to the gRPC services (same checks,
//! same audit), carrying the `Authorization` header over.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use photon_api::iam::v1 as pb;
use photon_api::iam::v1::admin_server::Admin;
use serde::Deserialize;
use serde_json::json;

use crate::api::admin::AdminService;
use crate::error::IamError;
use crate::state::Iam;

#[derive(Clone)]
struct Rest {
    iam: Iam,
    admin: std::sync::Arc<AdminService>,
}

pub fn router(iam: Iam) -> Router {
    let admin = std::sync::Arc::new(AdminService::new(iam.clone()));
    Router::new()
        .route("/api/v1/auth/token", post(token))
        .route("/api/v1/auth/whoami", get(whoami))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/api/v1/orgs", get(list_orgs).post(create_org))
        .route("/api/v1/orgs/{org}", get(get_org).delete(delete_org))
        .route("/api/v1/orgs/{org}/projects", get(list_projects).post(create_project))
        .route("/api/v1/orgs/{org}/projects/{project}", get(get_project).delete(delete_project))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{name}", get(get_user).delete(delete_user).patch(update_user))
        .route("/api/v1/orgs/{org}/groups", get(list_groups).post(create_group))
        .route("/api/v1/orgs/{org}/groups/{name}", get(get_group).delete(delete_group))
        .route("/api/v1/orgs/{org}/groups/{name}/members", post(add_member))
        .route("/api/v1/orgs/{org}/groups/{name}/members/{member}", axum::routing::delete(remove_member))
        .route("/api/v1/orgs/{org}/projects/{project}/service-accounts", get(list_accounts).post(create_account))
        .route("/api/v1/orgs/{org}/projects/{project}/service-accounts/{name}", get(get_account).delete(delete_account))
        .route("/api/v1/bindings", get(list_bindings).post(create_binding))
        .route("/api/v1/bindings/{id}", get(get_binding).delete(delete_binding))
        .route("/api/v1/roles", get(list_roles).post(create_role))
        .route("/api/v1/roles/{*id}", get(get_role).delete(delete_role))
        .route("/api/v1/access-keys", get(list_access_keys).post(create_access_key))
        .route("/api/v1/access-keys/{key_id}", axum::routing::delete(delete_access_key))
        .route("/api/v1/signing-keys/rotate", post(rotate))
        .route("/api/v1/audit", get(query_audit))
        .with_state(Rest { iam, admin })
}

/// `POST /api/v1/auth/token`: `{"user","password"}`, `{"key_id","secret"}` or
/// `{"refresh_token"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    user: Option<String>,
    password: Option<String>,
    key_id: Option<String>,
    secret: Option<String>,
    refresh_token: Option<String>,
}

async fn token(
    State(rest): State<Rest>,
    body: Result<Json<TokenBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let answer = async {
        let Json(body) = body.map_err(|e| IamError::invalid("body", e.body_text()))?;
        match body {
            TokenBody {
                user: Some(user),
                password: Some(password),
                key_id: None,
                secret: None,
                refresh_token: None,
            } => rest.iam.login_password(&user, &password).await,
            TokenBody { key_id: Some(id), secret: Some(secret), user: None, password: None, refresh_token: None } => {
                rest.iam.login_access_key(&id, &secret).await
            }
            TokenBody { refresh_token: Some(token), user: None, password: None, key_id: None, secret: None } => {
                rest.iam.refresh(&token).await
            }
            _ => Err(IamError::invalid(
                "body",
                "give exactly one of {user, password}, {key_id, secret} or {refresh_token}",
            )),
        }
    }
    .await;
    match answer {
        Ok(tokens) => Json(json!({
            "access_token": tokens.access_token,
            "token_type": "Bearer",
            "expires_at": tokens.expires_at,
            "refresh_token": tokens.refresh_token,
            "refresh_expires_at": tokens.refresh_expires_at,
            "principal": tokens.principal,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn whoami(State(rest): State<Rest>, headers: HeaderMap) -> Response {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match rest.iam.caller_from_header(header) {
        Ok(claims) => Json(json!({
            "principal": claims.sub,
            "org": claims.org,
            "groups": rest.iam.policies().groups_of(&claims.sub),
            "expires_at": claims.exp,
            "token_id": claims.jti,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn jwks(State(rest): State<Rest>) -> Json<serde_json::Value> {
    Json(rest.iam.keyring.jwks())
}

async fn discovery(State(rest): State<Rest>) -> Json<serde_json::Value> {
    let issuer = rest.iam.keyring.issuer().trim_end_matches('/').to_string();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "token_endpoint": format!("{issuer}/api/v1/auth/token"),
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "grant_types_supported": ["password", "refresh_token"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "jti", "typ", "org"],
    }))
}

/// Runs a gRPC handler with the HTTP caller's credentials and answers its result as JSON.
async fn adapt<Req, Resp, F, Fut>(headers: &HeaderMap, body: Req, handler: F) -> Response
where
    F: FnOnce(tonic::Request<Req>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    Resp: serde::Serialize,
{
    let mut request = tonic::Request::new(body);
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    match handler(request).await {
        Ok(answer) => Json(answer.into_inner()).into_response(),
        Err(status) => photon_runtime::rest::status_response(&status),
    }
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn body<T>(body: JsonBody<T>) -> Result<T, IamError> {
    body.map(|Json(b)| b).map_err(|e| IamError::invalid("body", e.body_text()))
}

macro_rules! with_body {
    ($body:expr) => {
        match body($body) {
            Ok(b) => b,
            Err(e) => return e.into_response(),
        }
    };
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ScopeQuery {
    scope: String,
    org: String,
    principal: String,
    since_ms: i64,
    until_ms: i64,
    limit: u32,
}

fn query(q: Result<Query<ScopeQuery>, axum::extract::rejection::QueryRejection>) -> Result<ScopeQuery, IamError> {
    q.map(|Query(q)| q).map_err(|e| IamError::invalid("query", e.body_text()))
}

macro_rules! with_query {
    ($q:expr) => {
        match query($q) {
            Ok(q) => q,
            Err(e) => return e.into_response(),
        }
    };
}

type Q = Result<Query<ScopeQuery>, axum::extract::rejection::QueryRejection>;

async fn list_orgs(State(r): State<Rest>, h: HeaderMap) -> Response {
    adapt(&h, pb::ListOrgsRequest {}, |q| async move { r.admin.list_orgs(q).await }).await
}
async fn create_org(State(r): State<Rest>, h: HeaderMap, b: JsonBody<pb::CreateOrgRequest>) -> Response {
    let b = with_body!(b);
    adapt(&h, b, |q| async move { r.admin.create_org(q).await }).await
}
async fn get_org(State(r): State<Rest>, h: HeaderMap, Path(org): Path<String>) -> Response {
    adapt(&h, pb::GetOrgRequest { name: org }, |q| async move { r.admin.get_org(q).await }).await
}
async fn delete_org(State(r): State<Rest>, h: HeaderMap, Path(org): Path<String>) -> Response {
    adapt(&h, pb::DeleteOrgRequest { name: org }, |q| async move { r.admin.delete_org(q).await }).await
}
async fn list_projects(State(r): State<Rest>, h: HeaderMap, Path(org): Path<String>) -> Response {
    adapt(&h, pb::ListProjectsRequest { org }, |q| async move { r.admin.list_projects(q).await }).await
}
async fn create_project(
    State(r): State<Rest>,
    h: HeaderMap,
    Path(org): Path<String>,
    b: JsonBody<pb::CreateProjectRequest>,
) -> Response {
    let b = pb::CreateProjectRequest { org, ..with_body!(b) };
    adapt(&h, b, |q| async move { r.admin.create_project(q).await }).await
}
async fn get_project(State(r): State<Rest>, h: HeaderMap, Path((org, name)): Path<(String, String)>) -> Response {
    adapt(&h, pb::GetProjectRequest { org, name }, |q| async move { r.admin.get_project(q).await }).await
}
async fn delete_project(State(r): State<Rest>, h: HeaderMap, Path((org, name)): Path<(String, String)>) -> Response {
    adapt(&h, pb::DeleteProjectRequest { org, name }, |q| async move { r.admin.delete_project(q).await }).await
}
async fn list_users(State(r): State<Rest>, h: HeaderMap, q: Q) -> Response {
    let q = with_query!(q);
    adapt(&h, pb::ListUsersRequest { org: q.org }, |q| async move { r.admin.list_users(q).await }).await
}
async fn create_user(State(r): State<Rest>, h: HeaderMap, b: JsonBody<pb::CreateUserRequest>) -> Response {
    let b = with_body!(b);
    adapt(&h, b, |q| async move { r.admin.create_user(q).await }).await
}
async fn get_user(State(r): State<Rest>, h: HeaderMap, Path(name): Path<String>) -> Response {
    adapt(&h, pb::GetUserRequest { name }, |q| async move { r.admin.get_user(q).await }).await
}
async fn update_user(
    State(r): State<Rest>,
    h: HeaderMap,
    Path(name): Path<String>,
    b: JsonBody<pb::UpdateUserRequest>,
) -> Response {
    let b = pb::UpdateUserRequest { name, ..with_body!(b) };
    adapt(&h, b, |q| async move { r.admin.update_user(q).await }).await
}
async fn delete_user(State(r): State<Rest>, h: HeaderMap, Path(name): Path<String>) -> Response {
    adapt(&h, pb::DeleteUserRequest { name }, |q| async move { r.admin.delete_user(q).await }).await
}
async fn list_bindings(State(r): State<Rest>, h: HeaderMap, q: Q) -> Response {
    let q = with_query!(q);
    adapt(&h, pb::ListBindingsRequest { scope: q.scope }, |q| async move { r.admin.list_bindings(q).await }).await
}
async fn create_binding(State(r): State<Rest>, h: HeaderMap, b: JsonBody<pb::CreateBindingRequest>) -> Response {
    let b = with_body!(b);
    adapt(&h, b, |q| async move { r.admin.create_binding(q).await }).await
}
async fn list_roles(State(r): State<Rest>, h: HeaderMap, q: Q) -> Response {
    let q = with_query!(q);
    adapt(&h, pb::ListRolesRequest { scope: q.scope }, |q| async move { r.admin.list_roles(q).await }).await
}
async fn create_role(State(r): State<Rest>, h: HeaderMap, b: JsonBody<pb::CreateRoleRequest>) -> Response {
    let b = with_body!(b);
    adapt(&h, b, |q| async move { r.admin.create_role(q).await }).await
}
async fn list_access_keys(State(r): State<Rest>, h: HeaderMap, q: Q) -> Response {
    let q = with_query!(q);
    adapt(
        &h,
        pb::ListAccessKeysRequest { principal: q.principal },
        |q| async move { r.admin.list_access_keys(q).await },
    )
    .await
}
async fn create_access_key(State(r): State<Rest>, h: HeaderMap, b: JsonBody<pb::CreateAccessKeyRequest>) -> Response {
    let b = with_body!(b);
    adapt(&h, b, |q| async move { r.admin.create_access_key(q).await }).await
}
async fn query_audit(State(r): State<Rest>, h: HeaderMap, q: Q) -> Response {
    let q = with_query!(q);
    let request = pb::QueryAuditRequest { scope: q.scope, since_ms: q.since_ms, until_ms: q.until_ms, limit: q.limit };
    adapt(&h, request, |q| async move { r.admin.query_audit(q).await }).await
}

async fn list_groups(State(r): State<Rest>, h: HeaderMap, Path(org): Path<String>) -> Response {
    adapt(&h, pb::ListGroupsRequest { org }, |q| async move { r.admin.list_groups(q).await }).await
}
async fn create_group(
    State(r): State<Rest>,
    h: HeaderMap,
    Path(org): Path<String>,
    b: JsonBody<pb::CreateGroupRequest>,
) -> Response {
    let b = pb::CreateGroupRequest { org, ..with_body!(b) };
    adapt(&h, b, |q| async move { r.admin.create_group(q).await }).await
}
async fn get_group(State(r): State<Rest>, h: HeaderMap, Path((org, name)): Path<(String, String)>) -> Response {
    adapt(&h, pb::GetGroupRequest { org, name }, |q| async move { r.admin.get_group(q).await }).await
}
async fn delete_group(State(r): State<Rest>, h: HeaderMap, Path((org, name)): Path<(String, String)>) -> Response {
    adapt(&h, pb::DeleteGroupRequest { org, name }, |q| async move { r.admin.delete_group(q).await }).await
}
async fn add_member(
    State(r): State<Rest>,
    h: HeaderMap,
    Path((org, name)): Path<(String, String)>,
    b: JsonBody<pb::GroupMemberRequest>,
) -> Response {
    let b = pb::GroupMemberRequest { org, name, ..with_body!(b) };
    adapt(&h, b, |q| async move { r.admin.add_group_member(q).await }).await
}
async fn remove_member(
    State(r): State<Rest>,
    h: HeaderMap,
    Path((org, name, member)): Path<(String, String, String)>,
) -> Response {
    adapt(&h, pb::GroupMemberRequest { org, name, member }, |q| async move { r.admin.remove_group_member(q).await })
        .await
}
async fn list_accounts(State(r): State<Rest>, h: HeaderMap, Path((org, project)): Path<(String, String)>) -> Response {
    let request = pb::ListServiceAccountsRequest { org, project };
    adapt(&h, request, |q| async move { r.admin.list_service_accounts(q).await }).await
}
async fn create_account(
    State(r): State<Rest>,
    h: HeaderMap,
    Path((org, project)): Path<(String, String)>,
    b: JsonBody<pb::CreateServiceAccountRequest>,
) -> Response {
    let b = pb::CreateServiceAccountRequest { org, project, ..with_body!(b) };
    adapt(&h, b, |q| async move { r.admin.create_service_account(q).await }).await
}
async fn get_account(
    State(r): State<Rest>,
    h: HeaderMap,
    Path((org, project, name)): Path<(String, String, String)>,
) -> Response {
    let request = pb::GetServiceAccountRequest { org, project, name };
    adapt(&h, request, |q| async move { r.admin.get_service_account(q).await }).await
}
async fn delete_account(
    State(r): State<Rest>,
    h: HeaderMap,
    Path((org, project, name)): Path<(String, String, String)>,
) -> Response {
    let request = pb::DeleteServiceAccountRequest { org, project, name };
    adapt(&h, request, |q| async move { r.admin.delete_service_account(q).await }).await
}
async fn get_binding(State(r): State<Rest>, h: HeaderMap, Path(id): Path<String>, q: Q) -> Response {
    let q = with_query!(q);
    adapt(&h, pb::GetBindingRequest { scope: q.scope, id }, |q| async move { r.admin.get_binding(q).await }).await
}
async fn delete_binding(State(r): State<Rest>, h: HeaderMap, Path(id): Path<String>, q: Q) -> Response {
    let q = with_query!(q);
    adapt(&h, pb::DeleteBindingRequest { scope: q.scope, id }, |q| async move { r.admin.delete_binding(q).await }).await
}
async fn get_role(State(r): State<Rest>, h: HeaderMap, Path(id): Path<String>) -> Response {
    adapt(&h, pb::GetRoleRequest { id }, |q| async move { r.admin.get_role(q).await }).await
}
async fn delete_role(State(r): State<Rest>, h: HeaderMap, Path(id): Path<String>) -> Response {
    adapt(&h, pb::DeleteRoleRequest { id }, |q| async move { r.admin.delete_role(q).await }).await
}
async fn delete_access_key(State(r): State<Rest>, h: HeaderMap, Path(key_id): Path<String>) -> Response {
    adapt(&h, pb::DeleteAccessKeyRequest { key_id }, |q| async move { r.admin.delete_access_key(q).await }).await
}
async fn rotate(State(r): State<Rest>, h: HeaderMap) -> Response {
    adapt(&h, pb::RotateSigningKeyRequest {}, |q| async move { r.admin.rotate_signing_key(q).await }).await
}
