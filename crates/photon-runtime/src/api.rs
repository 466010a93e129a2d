//! What a service hands the runtime: its gRPC services, its HTTP routes, its health check and
//! its metrics. The runtime adds `/health`, `/metrics` and the Runtime gRPC service, and puts all
//! of it behind one port.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::routing::get;
use axum::Router;
use photon_api::runtime::v1::runtime_server::RuntimeServer;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::config::ServiceSpec;
use crate::fallback;
use crate::health::{self, Health, HealthCheck, HealthReport};
use crate::metrics::{self, Metrics};
use crate::observe;
use crate::runtime_api::RuntimeService;
use crate::streams::{StreamProtocol, Streams};

/// Wraps a service's routes (its gRPC services and REST), e.g. in the shared auth guard.
type Guard = Box<dyn FnOnce(Router) -> Router + Send>;

pub struct Api {
    grpc: Routes,
    http: Router,
    health: HealthCheck,
    registry: Registry,
    guard: Option<Guard>,
    streams: Vec<StreamProtocol>,
}

impl Api {
    /// An API with no routes yet, reporting health through `check`.
    pub fn new(check: impl Fn() -> HealthReport + Send + Sync + 'static) -> Self {
        Self {
            grpc: Routes::default(),
            http: Router::new(),
            health: Arc::new(check),
            registry: Registry::default(),
            guard: None,
            streams: Vec::new(),
        }
    }

    /// Adds a tonic-generated gRPC server.
    pub fn grpc<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.grpc = self.grpc.add_service(service);
        self
    }

    /// Adds HTTP routes (REST under `/api/v1/...`).
    pub fn http(mut self, router: Router) -> Self {
        self.http = self.http.merge(router);
        self
    }

    /// Puts every request through `guard` (photon-auth's `Guard::apply`), which must keep
    /// `/health`, `/metrics` and the Runtime service open.
    pub fn guard(mut self, guard: impl FnOnce(Router) -> Router + Send + 'static) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Serves another protocol on the API port to connections that negotiate it by ALPN.
    pub fn stream(mut self, protocol: StreamProtocol) -> Self {
        self.streams.push(protocol);
        self
    }

    pub(crate) fn take_streams(&mut self) -> Streams {
        Streams(Arc::new(std::mem::take(&mut self.streams)))
    }

    /// The registry where the service registers its own metrics.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The router serving everything, observed by the metrics/request-id middleware.
    pub(crate) fn into_router(self, spec: &ServiceSpec, shutdown: CancellationToken) -> Router {
        let health = Health { check: self.health, shutdown };
        let runtime = RuntimeService {
            service: spec.name,
            version: spec.version,
            node: photon_tls::local_names().last().cloned().unwrap_or_default(),
            started: Instant::now(),
            health: health.clone(),
        };
        let metrics = Arc::new(Metrics::new(self.registry, spec.name, spec.version));
        let grpc = self.grpc.add_service(RuntimeServer::new(runtime)).into_axum_router();
        let builtin = Router::new()
            .route("/health", get(health::handler).with_state(health))
            .route("/metrics", get(metrics::handler).with_state(metrics.clone()));
        let routes = grpc.merge(self.http).merge(builtin).fallback(fallback::handler);
        let routes = match self.guard {
            Some(guard) => guard(routes),
            None => routes,
        };
        routes.layer(axum::middleware::from_fn_with_state(metrics, observe::middleware))
    }
}
