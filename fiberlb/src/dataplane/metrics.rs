//! FiberLB's counters on `/metrics`: per listener, connections accepted and (L7) requests by
//! status class with their latency; per backend, connections or requests in flight and whether
//! it is up. A listener's handles are resolved once per plan (`ListenerMetrics`), so counting a
//! request costs a few atomic increments, not a label lookup.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use photon_runtime::histogram::AtomicHistogram;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `org/project`.
    pub project: String,
    pub loadbalancer: String,
    pub listener: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    project: String,
    loadbalancer: String,
    listener: String,
    /// `2xx`, `3xx`, `4xx`, `5xx` (others: `1xx`).
    class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub project: String,
    pub loadbalancer: String,
    pub pool: String,
    pub backend: String,
}

fn latency() -> AtomicHistogram {
    // 0.1 ms .. ~6.5 s. Lock-free: every dataplane thread observes the same listener's.
    AtomicHistogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

pub struct Metrics {
    connections: Family<ListenerLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<ListenerLabels, AtomicHistogram, fn() -> AtomicHistogram>,
    backend_active: Family<BackendLabels, Gauge>,
    backend_up: Family<BackendLabels, Gauge>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            connections: Family::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency),
            backend_active: Family::default(),
            backend_up: Family::default(),
        })
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register("fiberlb_connections", "Connections accepted, by listener", self.connections.clone());
        registry.register("fiberlb_requests", "HTTP requests answered, by listener and status class", self.requests.clone());
        registry.register(
            "fiberlb_request_duration_seconds",
            "HTTP request to response head, by listener",
            self.latency.clone(),
        );
        registry.register("fiberlb_backend_active", "Connections or requests in flight, by backend", self.backend_active.clone());
        registry.register("fiberlb_backend_up", "1 if the backend takes new traffic (healthy, not ejected)", self.backend_up.clone());
    }

    /// The handles one listener counts with.
    pub fn listener(&self, labels: &ListenerLabels) -> ListenerMetrics {
        let class = |class: &'static str| {
            let l = RequestLabels {
                project: labels.project.clone(),
                loadbalancer: labels.loadbalancer.clone(),
                listener: labels.listener.clone(),
                class,
            };
            self.requests.get_or_create(&l).clone()
        };
        ListenerMetrics {
            connections: self.connections.get_or_create(labels).clone(),
            classes: [class("1xx"), class("2xx"), class("3xx"), class("4xx"), class("5xx")],
            latency: self.latency.get_or_create(labels).clone(),
        }
    }

    /// Sets every backend's gauges (and forgets backends no longer configured).
    pub fn backends(&self, backends: impl Iterator<Item = (BackendLabels, i64, bool)>) {
        self.backend_active.clear();
        self.backend_up.clear();
        for (labels, active, up) in backends {
            self.backend_active.get_or_create(&labels).set(active);
            self.backend_up.get_or_create(&labels).set(i64::from(up));
        }
    }
}

/// One listener's counters.
#[derive(Clone)]
pub struct ListenerMetrics {
    pub connections: Counter,
    classes: [Counter; 5],
    latency: AtomicHistogram,
}

impl ListenerMetrics {
    pub fn request(&self, status: u16, seconds: f64) {
        let i = usize::from((status / 100).clamp(1, 5)) - 1;
        self.classes[i].inc();
        self.latency.observe(seconds);
    }
}
