//! HTTP routes a test drives: a slow request for drain tests, a templated route for metrics.

use std::time::Duration;

use axum::extract::{Path, Query};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// The longest sleep a request may ask for.
const MAX_SLEEP_MS: u64 = 60_000;

#[derive(Deserialize)]
struct Sleep {
    ms: u64,
}

async fn sleep(Query(q): Query<Sleep>) -> Json<Value> {
    let ms = q.ms.min(MAX_SLEEP_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({ "slept_ms": ms }))
}

async fn echo(Path(word): Path<String>) -> Json<Value> {
    Json(json!({ "word": word }))
}

pub fn router() -> Router {
    Router::new().route("/api/v1/sleep", get(sleep)).route("/api/v1/echo/{word}", get(echo))
}
