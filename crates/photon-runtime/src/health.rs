//! `GET /health`: the service's own report as JSON, HTTP 200 only when healthy.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    /// Serving, but a dependency (a `Wants` neighbour) is missing or late.
    Degraded,
    Unhealthy,
}

/// What a service says about itself: a status and the service-specific fields of PLATFORM.md
/// (`raft`, `cluster_size`, `chainfire`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub details: Map<String, Value>,
}

impl HealthReport {
    pub fn new(status: HealthStatus) -> Self {
        Self { status, details: Map::new() }
    }

    pub fn healthy() -> Self {
        Self::new(HealthStatus::Healthy)
    }

    /// Adds a service-specific field to the JSON document.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// `{"status": ..., <details>}`.
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("status".into(), serde_json::to_value(self.status).unwrap_or(Value::Null));
        for (k, v) in &self.details {
            doc.insert(k.clone(), v.clone());
        }
        Value::Object(doc)
    }

    pub fn http_status(&self) -> StatusCode {
        match self.status {
            HealthStatus::Healthy => StatusCode::OK,
            HealthStatus::Degraded | HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The service's health check. It must answer at once from state the service keeps current;
/// `/health` never waits on a dependency.
pub type HealthCheck = Arc<dyn Fn() -> HealthReport + Send + Sync>;

/// The health check as the runtime sees it: a draining server reports itself unhealthy so
/// load balancers and `photonctl` stop sending it work.
#[derive(Clone)]
pub(crate) struct Health {
    pub check: HealthCheck,
    pub shutdown: CancellationToken,
}

impl Health {
    pub fn report(&self) -> HealthReport {
        if self.shutdown.is_cancelled() {
            return HealthReport::new(HealthStatus::Unhealthy).with("shutting_down", true);
        }
        (self.check)()
    }
}

pub(crate) async fn handler(State(health): State<Health>) -> Response {
    let report = health.report();
    (report.http_status(), Json(report.to_json())).into_response()
}
