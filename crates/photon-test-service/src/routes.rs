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

/// A tenant resource behind the auth guard: who asked, for which project.
async fn items(
    Path((org, project)): Path<(String, String)>,
    caller: Option<axum::Extension<photon_auth::Caller>>,
) -> Json<Value> {
    let principal = caller.map(|c| c.0.principal).unwrap_or_default();
    Json(json!({ "org": org, "project": project, "items": [], "caller": principal }))
}

pub const ITEMS: &str = "/api/v1/demo/orgs/{org}/projects/{project}/items";

pub fn router() -> Router {
    Router::new().route("/api/v1/sleep", get(sleep)).route("/api/v1/echo/{word}", get(echo)).route(ITEMS, get(items))
}

/// The gRPC demo: answers who the guard let in.
pub struct Demo;

#[tonic::async_trait]
impl photon_api::testing::v1::demo_server::Demo for Demo {
    async fn list_items(
        &self,
        request: tonic::Request<photon_api::testing::v1::ListItemsRequest>,
    ) -> Result<tonic::Response<photon_api::testing::v1::ListItemsResponse>, tonic::Status> {
        let caller = request.extensions().get::<photon_auth::Caller>().map(|c| c.principal.clone()).unwrap_or_default();
        Ok(tonic::Response::new(photon_api::testing::v1::ListItemsResponse { caller }))
    }
}

/// What each route declares, for the auth guard.
pub fn rules() -> Vec<photon_auth::Rule> {
    use axum::http::Method;
    use photon_auth::Rule;
    vec![
        Rule::public(Some(Method::GET), "/api/v1/sleep"),
        Rule::public(Some(Method::GET), "/api/v1/echo/{word}"),
        Rule::new(Some(Method::GET), ITEMS, "demo:items:list", "orgs/{org}/projects/{project}"),
        Rule::grpc(
            "/photon.testing.v1.Demo/ListItems",
            "demo:items:list",
            "orgs/{header:x-org}/projects/{header:x-project}",
        ),
    ]
}
