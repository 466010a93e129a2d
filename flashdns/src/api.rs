//! The management API on the API port: zones and record sets of a project as REST under
//! `/api/v1/orgs/{org}/projects/{project}/zones`. photon-auth's guard checks the bearer token
//! and asks IAM before a handler runs; handlers only see their own project's zones.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::extract::DefaultBodyLimit;
use axum::{Extension, Json, Router};
use std::sync::Arc;

use crate::dnssec::manage::{self, SignRequest};
use crate::dnssec::Keyring;
use photon_auth::Rule;
use photon_resource::{json, Owner, ResourceError};
use serde::Deserialize;

use crate::model::{RecordSetSpec, ZoneSpec};
use crate::store::Zones;

const ZONES: &str = "/api/v1/orgs/{org}/projects/{project}/zones";
const ZONE: &str = "/api/v1/orgs/{org}/projects/{project}/zones/{zone}";
const RECORDS: &str = "/api/v1/orgs/{org}/projects/{project}/zones/{zone}/records";
const RECORD: &str = "/api/v1/orgs/{org}/projects/{project}/zones/{zone}/records/{name}/{type}";
const IMPORT: &str = "/api/v1/orgs/{org}/projects/{project}/zones/{zone}/import";
const EXPORT: &str = "/api/v1/orgs/{org}/projects/{project}/zones/{zone}/export";
const DNSSEC: &str = "/api/v1/orgs/{org}/projects/{project}/zones/{zone}/dnssec";
const ROLLOVER: &str = "/api/v1/orgs/{org}/projects/{project}/zones/{zone}/dnssec/rollover";
const DNSSEC_KEY: &str = "/api/v1/orgs/{org}/projects/{project}/zones/{zone}/dnssec/keys/{tag}";
const REVERSE: &str = "/api/v1/orgs/{org}/projects/{project}/reverse-zones";
const ADDRESS: &str = "/api/v1/orgs/{org}/projects/{project}/reverse-zones/addresses/{ip}";

/// Every route: method, path template, the IAM action it needs, and on what.
pub const ROUTES: &[(&str, &str, &str, Scope)] = &[
    ("GET", ZONES, "flashdns:zones:list", Scope::Project),
    ("POST", ZONES, "flashdns:zones:create", Scope::Project),
    ("GET", ZONE, "flashdns:zones:get", Scope::Zone),
    ("PUT", ZONE, "flashdns:zones:update", Scope::Zone),
    ("DELETE", ZONE, "flashdns:zones:delete", Scope::Zone),
    ("GET", RECORDS, "flashdns:records:list", Scope::Zone),
    ("GET", RECORD, "flashdns:records:get", Scope::Zone),
    ("PUT", RECORD, "flashdns:records:set", Scope::Zone),
    ("DELETE", RECORD, "flashdns:records:delete", Scope::Zone),
    ("POST", IMPORT, "flashdns:zones:import", Scope::Zone),
    ("GET", EXPORT, "flashdns:zones:export", Scope::Zone),
    ("GET", DNSSEC, "flashdns:zones:get", Scope::Zone),
    ("POST", DNSSEC, "flashdns:zones:sign", Scope::Zone),
    ("DELETE", DNSSEC, "flashdns:zones:sign", Scope::Zone),
    ("POST", ROLLOVER, "flashdns:zones:sign", Scope::Zone),
    ("DELETE", DNSSEC_KEY, "flashdns:zones:sign", Scope::Zone),
    ("POST", REVERSE, "flashdns:zones:create", Scope::Project),
    ("PUT", ADDRESS, "flashdns:records:set", Scope::Project),
    ("DELETE", ADDRESS, "flashdns:records:delete", Scope::Project),
];

/// What a route's action is checked on in IAM's resource tree.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Project,
    Zone,
}

/// What each route needs from IAM.
pub fn rules() -> Vec<Rule> {
    ROUTES
        .iter()
        .map(|(method, path, action, scope)| {
            let resource = match scope {
                Scope::Project => "orgs/{org}/projects/{project}",
                Scope::Zone => "orgs/{org}/projects/{project}/zones/{zone}",
            };
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            Rule::new(Some(method), path, action, resource)
        })
        .collect()
}

pub fn router(zones: Zones, keyring: Arc<Keyring>) -> Router {
    // Zone files may be large; every other body is a small JSON document.
    let bulk = Router::new()
        .route(IMPORT, post(import))
        .layer(DefaultBodyLimit::max(json::MAX_BULK_BYTES))
        .layer(axum::middleware::from_fn_with_state(json::MAX_BULK_BYTES, json::refuse_over));
    Router::new()
        .route(DNSSEC, get(dnssec_status).post(sign_zone).delete(unsign_zone))
        .route(ROLLOVER, post(rollover))
        .route(DNSSEC_KEY, axum::routing::delete(remove_key))
        .route(ZONES, get(list_zones).post(create_zone))
        .route(ZONE, get(get_zone).put(update_zone).delete(delete_zone))
        .route(RECORDS, get(list_records))
        .route(RECORD, get(get_records).put(set_records).delete(delete_records))
        .route(EXPORT, get(export))
        .route(REVERSE, post(create_reverse))
        .route(ADDRESS, put(register_address).delete(unregister_address))
        .layer(DefaultBodyLimit::max(json::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(json::MAX_BODY_BYTES, json::refuse_over))
        .merge(bulk)
        .with_state(zones)
        .layer(Extension(keyring))
}

type Result<T> = std::result::Result<T, ResourceError>;

#[derive(Deserialize)]
struct ListParams {
    limit: Option<usize>,
    page_token: Option<String>,
}

async fn list_zones(
    State(zones): State<Zones>,
    Path((org, project)): Path<(String, String)>,
    Query(params): Query<ListParams>,
) -> Result<Response> {
    let limit = params.limit.unwrap_or(100).clamp(1, 1000);
    let (items, next) = zones.list(&Owner::new(org, project), params.page_token.as_deref(), limit).await?;
    Ok(Json(serde_json::json!({ "zones": items, "next_page_token": next })).into_response())
}

async fn create_zone(
    State(zones): State<Zones>,
    Path((org, project)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    let spec: ZoneSpec = json::parse(&body)?;
    let zone = zones.create(&Owner::new(org, project), spec).await?;
    Ok((StatusCode::CREATED, Json(zone)).into_response())
}

async fn get_zone(State(zones): State<Zones>, Path((org, project, zone)): Path<(String, String, String)>) -> Result<Response> {
    let zone = zones.get(&Owner::new(org, project), &zone).await?;
    Ok(Json(zone.value).into_response())
}

async fn update_zone(
    State(zones): State<Zones>,
    Path((org, project, zone)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response> {
    let owner = Owner::new(org, project);
    // Another project's zone is "not found" whatever the body says.
    zones.get(&owner, &zone).await?;
    let spec: ZoneSpec = json::parse(&body)?;
    let zone = zones.set_spec(&owner, &zone, spec).await?;
    Ok(Json(zone).into_response())
}

async fn delete_zone(
    State(zones): State<Zones>,
    Path((org, project, zone)): Path<(String, String, String)>,
) -> Result<Response> {
    zones.delete(&Owner::new(org, project), &zone).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_records(
    State(zones): State<Zones>,
    Path((org, project, zone)): Path<(String, String, String)>,
) -> Result<Response> {
    let sets = zones.record_sets(&Owner::new(org, project), &zone).await?;
    Ok(Json(serde_json::json!({ "record_sets": sets })).into_response())
}

async fn get_records(
    State(zones): State<Zones>,
    Path((org, project, zone, name, rtype)): Path<(String, String, String, String, String)>,
) -> Result<Response> {
    let set = zones.record_set(&Owner::new(org, project), &zone, &name, &rtype).await?;
    Ok(Json(set).into_response())
}

async fn set_records(
    State(zones): State<Zones>,
    Path((org, project, zone, name, rtype)): Path<(String, String, String, String, String)>,
    body: Bytes,
) -> Result<Response> {
    let spec: RecordSetSpec = json::parse(&body)?;
    let set = zones.set_records(&Owner::new(org, project), &zone, &name, &rtype, spec).await?;
    Ok(Json(set).into_response())
}

async fn delete_records(
    State(zones): State<Zones>,
    Path((org, project, zone, name, rtype)): Path<(String, String, String, String, String)>,
) -> Result<Response> {
    zones.delete_records(&Owner::new(org, project), &zone, &name, &rtype).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn import(
    State(zones): State<Zones>,
    Path((org, project, zone)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response> {
    let text = std::str::from_utf8(&body)
        .map_err(|e| ResourceError::Invalid { field: "body".into(), message: format!("the zone file is not UTF-8: {e}") })?;
    let zone = crate::import::import(&zones, &Owner::new(org, project), &zone, text).await?;
    Ok(Json(zone).into_response())
}

async fn export(
    State(zones): State<Zones>,
    Path((org, project, zone)): Path<(String, String, String)>,
) -> Result<Response> {
    let text = crate::import::export(&zones, &Owner::new(org, project), &zone).await?;
    Ok(([("content-type", "text/dns; charset=utf-8")], text).into_response())
}

async fn create_reverse(
    State(zones): State<Zones>,
    Path((org, project)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response> {
    let request: crate::reverse::CreateReverse = json::parse(&body)?;
    let created = crate::reverse::create(&zones, &Owner::new(org, project), request).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "zones": created }))).into_response())
}

async fn register_address(
    State(zones): State<Zones>,
    Path((org, project, ip)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response> {
    let request: crate::reverse::RegisterAddress = json::parse(&body)?;
    let set = crate::reverse::register(&zones, &Owner::new(org, project), &ip, request).await?;
    Ok(Json(set).into_response())
}

async fn unregister_address(
    State(zones): State<Zones>,
    Path((org, project, ip)): Path<(String, String, String)>,
) -> Result<Response> {
    crate::reverse::unregister(&zones, &Owner::new(org, project), &ip).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn dnssec_status(
    State(zones): State<Zones>,
    Extension(keyring): Extension<Arc<Keyring>>,
    Path((org, project, zone)): Path<(String, String, String)>,
) -> Result<Response> {
    let zone = zones.get(&Owner::new(org, project), &zone).await?;
    Ok(Json(manage::view(&keyring, &zone.value)?).into_response())
}

/// The body of a signing request; an empty body takes the defaults.
fn sign_request(body: &[u8]) -> std::result::Result<SignRequest, ResourceError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return json::parse(b"{}");
    }
    json::parse(body)
}

async fn sign_zone(
    State(zones): State<Zones>,
    Extension(keyring): Extension<Arc<Keyring>>,
    Path((org, project, zone)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response> {
    let owner = Owner::new(org, project);
    let zone = manage::sign(&zones, &keyring, &owner, &zone, sign_request(&body)?).await?;
    Ok((StatusCode::CREATED, Json(manage::view(&keyring, &zone)?)).into_response())
}

async fn rollover(
    State(zones): State<Zones>,
    Extension(keyring): Extension<Arc<Keyring>>,
    Path((org, project, zone)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Response> {
    let owner = Owner::new(org, project);
    let zone = manage::rollover(&zones, &keyring, &owner, &zone, sign_request(&body)?).await?;
    Ok(Json(manage::view(&keyring, &zone)?).into_response())
}

async fn remove_key(
    State(zones): State<Zones>,
    Extension(keyring): Extension<Arc<Keyring>>,
    Path((org, project, zone, tag)): Path<(String, String, String, String)>,
) -> Result<Response> {
    let zone = manage::remove_key(&zones, &Owner::new(org, project), &zone, &tag).await?;
    Ok(Json(manage::view(&keyring, &zone)?).into_response())
}

async fn unsign_zone(
    State(zones): State<Zones>,
    Extension(keyring): Extension<Arc<Keyring>>,
    Path((org, project, zone)): Path<(String, String, String)>,
) -> Result<Response> {
    let zone = manage::unsign(&zones, &Owner::new(org, project), &zone).await?;
    Ok(Json(manage::view(&keyring, &zone)?).into_response())
}
