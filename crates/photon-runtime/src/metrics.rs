//! Prometheus metrics: per-route request counts and latency histograms, plus whatever a
//! service registers itself. Served at `GET /metrics` in the OpenMetrics text format, which
//! Prometheus scrapes natively.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;

use crate::histogram::AtomicHistogram;
use prometheus_client::registry::Registry;

/// Labels of one request: `protocol` is `grpc` or `http`; `route` the gRPC method path or the
/// HTTP route template (never the raw path, so ids do not explode cardinality); `code` the gRPC
/// status or HTTP status code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub protocol: &'static str,
    pub route: String,
    pub code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    service: String,
    version: String,
}

fn latency_histogram() -> AtomicHistogram {
    // 0.25 ms .. ~8 s.
    AtomicHistogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

pub(crate) struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RequestLabels, AtomicHistogram, fn() -> AtomicHistogram>,
    pub in_flight: Gauge,
}

impl Metrics {
    pub fn new(mut registry: Registry, service: &str, version: &str) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RequestLabels, AtomicHistogram, fn() -> AtomicHistogram>::new_with_constructor(latency_histogram);
        let in_flight = Gauge::default();
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { service: service.into(), version: version.into() }).set(1);
        registry.register("photon_requests", "Requests served, by protocol, route and status", requests.clone());
        registry.register(
            "photon_request_duration_seconds",
            "Time from request to the end of the response body",
            duration.clone(),
        );
        registry.register("photon_requests_in_flight", "Requests being served now", in_flight.clone());
        registry.register("photon_build_info", "Service name and version", build);
        Self { registry, requests, duration, in_flight }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail for the metric types registered here.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub(crate) async fn handler(State(metrics): State<Arc<Metrics>>) -> Response {
    ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.encode()).into_response()
}
