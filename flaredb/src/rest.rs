//! FlareDB's REST API on the API port: keys, scans, regions and members as JSON. Keys are in
//! the path, the namespace in `?namespace=` (default `default`); values are JSON strings (a
//! value that is not UTF-8 is answered as `value_base64`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::background::{hex, region_entry};
use crate::error::FlareError;
use crate::ops::{Record, Scan};
use crate::store::Store;

pub fn router(store: Store, fault_injection: bool) -> Router {
    let debug = if fault_injection { photon_raft::fault::debug_routes(store.fault()) } else { Router::new() };
    Router::new()
        .route("/api/v1/kv/{*key}", get(get_key).put(put_key).delete(delete_key))
        .route("/api/v1/scan", get(scan))
        .route("/api/v1/regions", get(regions))
        .route("/api/v1/regions/{id}", get(region))
        .route("/api/v1/regions/{id}/split", axum::routing::post(split))
        .route("/admin/cluster/members", get(members))
        .with_state(store)
        .merge(debug)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Namespace {
    #[serde(default = "default_namespace")]
    namespace: String,
}

fn default_namespace() -> String {
    "default".into()
}

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, FlareError> {
    query.map(|Query(q)| q).map_err(|e| FlareError::InvalidArgument(format!("query string: {}", e.body_text())))
}

fn record_json(record: Record) -> Value {
    let mut doc = Map::new();
    doc.insert("key".into(), String::from_utf8_lossy(&record.key).into());
    photon_runtime::rest::put_bytes(&mut doc, "value", record.value.to_vec());
    doc.insert("version".into(), record.version.into());
    if record.expires_at_ms != 0 {
        doc.insert("expires_at_ms".into(), record.expires_at_ms.into());
    }
    Value::Object(doc)
}

async fn get_key(
    State(store): State<Store>,
    Path(key): Path<String>,
    q: Result<Query<Namespace>, QueryRejection>,
) -> Result<Response, FlareError> {
    let ns = query(q)?.namespace;
    match store.get(&ns, key.as_bytes()).await? {
        Some(record) => Ok(Json(record_json(record)).into_response()),
        None => Err(FlareError::NotFound(key, ns)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    value: String,
    #[serde(default)]
    ttl_seconds: u64,
    /// Present: write only if the key's version is this (0: create if absent).
    expected_version: Option<u64>,
}

async fn put_key(
    State(store): State<Store>,
    Path(key): Path<String>,
    q: Result<Query<Namespace>, QueryRejection>,
    body: Result<Json<PutBody>, JsonRejection>,
) -> Result<Response, FlareError> {
    let ns = query(q)?.namespace;
    let Json(body) = body.map_err(|e| FlareError::InvalidArgument(format!("request body: {}", e.body_text())))?;
    match body.expected_version {
        None => {
            let version = store.put(&ns, key.as_bytes(), body.value.as_bytes(), body.ttl_seconds).await?;
            Ok(Json(json!({ "key": key, "version": version })).into_response())
        }
        Some(expected) => {
            let (succeeded, record) =
                store.compare_and_swap(&ns, key.as_bytes(), expected, body.value.as_bytes(), body.ttl_seconds).await?;
            let current = record.map(record_json);
            if succeeded {
                Ok(Json(json!({ "succeeded": true, "record": current })).into_response())
            } else {
                let error = json!({ "code": "version_mismatch", "message": format!("key {key:?} is not at version {expected}") });
                let body = json!({ "succeeded": false, "record": current, "error": error });
                Ok((axum::http::StatusCode::CONFLICT, Json(body)).into_response())
            }
        }
    }
}

async fn delete_key(
    State(store): State<Store>,
    Path(key): Path<String>,
    q: Result<Query<Namespace>, QueryRejection>,
) -> Result<Response, FlareError> {
    let ns = query(q)?.namespace;
    let deleted = store.delete(&ns, key.as_bytes()).await?.is_some();
    Ok(Json(json!({ "key": key, "deleted": deleted })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanQuery {
    #[serde(default = "default_namespace")]
    namespace: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    reverse: bool,
    #[serde(default)]
    keys_only: bool,
    /// Hex, from the previous page.
    #[serde(default)]
    continuation: String,
}

fn unhex(text: &str) -> Result<Vec<u8>, FlareError> {
    let bad = || FlareError::InvalidArgument(format!("continuation {text:?} is not hex from a previous page"));
    if text.len() % 2 != 0 {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect()
}

async fn scan(State(store): State<Store>, q: Result<Query<ScanQuery>, QueryRejection>) -> Result<Response, FlareError> {
    let q = query(q)?;
    let scan = Scan {
        namespace: q.namespace,
        start: q.start.into_bytes(),
        end: q.end.into_bytes(),
        limit: q.limit,
        reverse: q.reverse,
        keys_only: q.keys_only,
        value_prefix: 0,
        continuation: unhex(&q.continuation)?,
    };
    let page = store.scan(&scan).await?;
    let continuation = (!page.continuation.is_empty()).then(|| hex(&page.continuation));
    let records: Vec<Value> = page.records.into_iter().map(record_json).collect();
    Ok(Json(json!({ "records": records, "continuation": continuation })).into_response())
}

async fn regions(State(store): State<Store>) -> Json<Value> {
    let regions: Vec<Value> = store.regions().iter().map(region_entry).collect();
    Json(json!({ "regions": regions, "store": store.id }))
}

async fn region(State(store): State<Store>, Path(id): Path<String>) -> Result<Json<Value>, FlareError> {
    let id: u64 = id.parse().map_err(|_| FlareError::InvalidArgument(format!("region id {id:?} is not a number")))?;
    Ok(Json(region_entry(&store.region(id)?)))
}

/// The stores replicating this store's regions, from Raft membership.
async fn members(State(store): State<Store>) -> Json<Value> {
    let mut members = std::collections::BTreeMap::new();
    for region in store.regions() {
        let metrics = region.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: Vec<u64> = membership.voter_ids().collect();
        for (id, node) in membership.nodes() {
            let entry = members
                .entry(*id)
                .or_insert_with(|| json!({ "id": id, "peer_addr": node.addr, "voter_in": [], "leader_of": [] }));
            let list = if metrics.current_leader == Some(*id) { "leader_of" } else { "voter_in" };
            if voters.contains(id) || list == "leader_of" {
                if let Some(regions) = entry[list].as_array_mut() {
                    regions.push(json!(region.descriptor().id));
                }
            }
        }
    }
    Json(json!({ "members": members.into_values().collect::<Vec<_>>(), "answered_by": store.id }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitBody {
    #[serde(default = "default_namespace")]
    namespace: String,
    /// A user key of `namespace` to split at; absent: the region's middle key.
    key: Option<String>,
}

async fn split(
    State(store): State<Store>,
    Path(id): Path<String>,
    body: Option<Json<SplitBody>>,
) -> Result<Json<Value>, FlareError> {
    let id: u64 = id.parse().map_err(|_| FlareError::InvalidArgument(format!("region id {id:?} is not a number")))?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let split_key = match &body.key {
        Some(key) => Some(store.store_key(&body.namespace, key.as_bytes())?),
        None => None,
    };
    let (left, right) = store.split(id, split_key).await?;
    let side = |d: crate::region::Descriptor| json!({ "id": d.id, "start_key": hex(&d.start_key), "end_key": hex(&d.end_key), "epoch": d.epoch });
    Ok(Json(json!({ "left": side(left), "right": side(right) })))
}
