//! The management API: every kind of `model` as REST under
//! `/api/v1/orgs/{org}/projects/{project}/loadbalancers/...` (photon-resource's routes), and
//! `.../loadbalancers/{lb}/health`, this node's live view of the load balancer's backends; each
//! route authorized by IAM through photon-auth's guard. The same resources as gRPC
//! (`photon.resource.v1.Resources`, photon-resource's), each call decided by the rule of the
//! REST route it mirrors.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::get;
use axum::{Json, Router};
use photon_api::resource::v1::resources_server::ResourcesServer;
use photon_auth::{AuthClient, Rule};
use photon_resource::grpc::Grpc;
use photon_resource::rest::Routes;
use photon_resource::{Owner, Resources};
use serde_json::{json, Value};

use crate::dataplane::Dataplane;
use crate::model::{Backend, HealthCheck, Listener, LoadBalancer, Pool, Rule as L7Rule};

const HEALTH: &str = "/api/v1/orgs/{org}/projects/{project}/loadbalancers/{loadbalancers}/health";

/// The router, the gRPC service of the same resources, and the IAM rule of each route.
pub fn router(resources: Resources, dataplane: Arc<Dataplane>, auth: Arc<AuthClient>) -> (Router, Vec<Rule>, ResourcesServer<Grpc>) {
    let routes = Routes::new("fiberlb")
        .kind::<LoadBalancer>()
        .kind::<Listener>()
        .kind::<L7Rule>()
        .kind::<Pool>()
        .kind::<Backend>()
        .kind::<HealthCheck>();
    let grpc = routes.grpc(resources.clone(), auth);
    let (router, mut rules) = routes.finish(resources);
    rules.push(Rule::new(
        Some(Method::GET),
        HEALTH,
        "fiberlb:loadbalancers:get",
        "orgs/{org}/projects/{project}/loadbalancers/{loadbalancers}",
    ));
    let router = router.merge(Router::new().route(HEALTH, get(backend_health)).with_state(dataplane));
    (router, rules, grpc)
}

/// Every backend of the load balancer's pools as this node sees it now: admin state, whether
/// it takes new traffic, connections or requests in flight, failing checks, ejection.
async fn backend_health(
    State(dataplane): State<Arc<Dataplane>>,
    Path((org, project, loadbalancer)): Path<(String, String, String)>,
) -> Json<Value> {
    let owner = Owner::new(org, project);
    let plan = dataplane.shared().plan();
    let mut backends = Vec::new();
    for ((pool_owner, lb, pool_name), pool) in &plan.pools {
        if *pool_owner != owner || *lb != loadbalancer {
            continue;
        }
        for backend in &pool.backends {
            let stats = dataplane.shared().stats.of(&backend.key);
            backends.push(json!({
                "pool": pool_name,
                "backend": backend.name,
                "address": format!("{}", std::net::SocketAddr::new(backend.spec.address, backend.spec.port)),
                "admin_state": backend.spec.admin_state,
                "up": stats.up(),
                "active": stats.active.load(Ordering::Relaxed),
                "failing_checks": stats.failing(),
                "ejected_for_ms": stats.ejected_for_ms(),
            }));
        }
    }
    Json(json!({ "loadbalancer": loadbalancer, "backends": backends }))
}
