//! The REST API on the API port: `GET/PUT/DELETE /api/v1/kv/{key}` and
//! `GET /admin/cluster/members`. Values are JSON strings (UTF-8); a value that is not UTF-8
//! is returned as `value_base64` instead. Errors are `{"error":{"code","message"}}`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use photon_raft::openraft::ServerState;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ChainfireError;
use crate::mvcc::model::{Command, DeleteRange, KeyRange, KeyValue, OpResult, Outcome, Put, Range};
use crate::mvcc::read;
use crate::node::Node;

pub fn router(node: Node, fault_injection: bool) -> Router {
    let debug = if fault_injection { photon_raft::fault::debug_routes(node.fault.clone()) } else { Router::new() };
    Router::new()
        .route("/api/v1/kv/{*key}", get(get_key).put(put_key).delete(delete_key))
        .route("/admin/cluster/members", get(members))
        .with_state(node)
        .merge(debug)
}

fn kv_json(kv: KeyValue) -> Value {
    let mut doc = serde_json::Map::new();
    doc.insert("key".into(), String::from_utf8_lossy(&kv.key).into());
    doc.insert("create_revision".into(), kv.create_revision.into());
    doc.insert("mod_revision".into(), kv.mod_revision.into());
    doc.insert("version".into(), kv.version.into());
    doc.insert("lease".into(), kv.lease.into());
    photon_runtime::rest::put_bytes(&mut doc, "value", kv.value);
    Value::Object(doc)
}

fn single(key: String) -> Result<KeyRange, ChainfireError> {
    if key.is_empty() {
        return Err(ChainfireError::EmptyKey);
    }
    Ok(KeyRange { key: key.into_bytes(), end: Vec::new() })
}

async fn get_key(State(node): State<Node>, Path(key): Path<String>) -> Result<Response, ChainfireError> {
    let range = Range { range: single(key.clone())?, ..Default::default() };
    node.linearize().await?;
    let (revision, mut found) = node.read(|reader| Ok((reader.revision()?, read::range(reader, None, &range)?)))?;
    match found.kvs.pop() {
        Some(kv) => Ok(Json(json!({ "revision": revision, "kv": kv_json(kv) })).into_response()),
        None => Err(ChainfireError::NoSuchKey(key)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    value: String,
    #[serde(default)]
    lease: i64,
}

async fn put_key(State(node): State<Node>, Path(key): Path<String>, body: Bytes) -> Result<Response, ChainfireError> {
    let body: PutBody = serde_json::from_slice(&body).map_err(|e| {
        ChainfireError::InvalidArgument(format!("request body must be {{\"value\": string, \"lease\"?: integer}}: {e}"))
    })?;
    let put = Put {
        key: single(key)?.key,
        value: body.value.into_bytes(),
        lease: body.lease,
        prev_kv: true,
        ignore_value: false,
        ignore_lease: false,
    };
    node.ensure_space().await?;
    match node.apply(Command::Put(put)).await? {
        (revision, Outcome::Op(OpResult::Put { prev })) => {
            Ok(Json(json!({ "revision": revision, "prev_kv": prev.map(kv_json) })).into_response())
        }
        _ => Err(ChainfireError::InvalidArgument("the store answered a different operation".into())),
    }
}

async fn delete_key(State(node): State<Node>, Path(key): Path<String>) -> Result<Response, ChainfireError> {
    let delete = DeleteRange { range: single(key)?, prev_kv: false };
    match node.apply(Command::DeleteRange(delete)).await? {
        (revision, Outcome::Op(OpResult::DeleteRange { deleted, .. })) => {
            Ok(Json(json!({ "revision": revision, "deleted": deleted })).into_response())
        }
        _ => Err(ChainfireError::InvalidArgument("the store answered a different operation".into())),
    }
}

async fn members(State(node): State<Node>) -> Response {
    let members = node.members();
    let leader = members.iter().find(|m| m.leader).map(|m| m.id);
    let listed: Vec<Value> = members
        .iter()
        .map(|m| {
            let role = if m.voter { "voter" } else { "learner" };
            json!({ "id": m.id, "peer_addr": m.peer_addr, "client_urls": m.client_urls, "role": role, "leader": m.leader })
        })
        .collect();
    let serving = leader.is_some() && node.raft.metrics().borrow().state != ServerState::Shutdown;
    let status = if serving { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "members": listed, "leader": leader, "answered_by": node.id }))).into_response()
}
