//! The management API: every kind of `model` as REST under
//! `/api/v1/orgs/{org}/projects/{project}/loadbalancers/...` (photon-resource's routes), each
//! route authorized by IAM through photon-auth's guard.

use axum::Router;
use photon_auth::Rule;
use photon_resource::rest::Routes;
use photon_resource::Resources;

use crate::model::{Backend, HealthCheck, Listener, LoadBalancer, Pool, Rule as L7Rule};

/// The router and the IAM rule of each route.
pub fn router(resources: Resources) -> (Router, Vec<Rule>) {
    Routes::new("fiberlb")
        .kind::<LoadBalancer>()
        .kind::<Listener>()
        .kind::<L7Rule>()
        .kind::<Pool>()
        .kind::<Backend>()
        .kind::<HealthCheck>()
        .finish(resources)
}
