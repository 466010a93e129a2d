//! The management API: every kind of `model` as REST under
//! `/api/v1/orgs/{org}/projects/{project}/{vpcs,floatingips,serviceips}/...` (photon-resource's
//! routes), each route authorized by IAM through photon-auth's guard, and the same resources
//! as gRPC (`photon.resource.v1.Resources`), each call decided by the rule of the REST route
//! it mirrors.

use std::sync::Arc;

use axum::Router;
use photon_api::resource::v1::resources_server::ResourcesServer;
use photon_auth::{AuthClient, Rule};
use photon_resource::grpc::Grpc;
use photon_resource::rest::Routes;
use photon_resource::Resources;

use crate::model::{FloatingIp, Port, Router as VpcRouter, SecurityGroup, SecurityGroupRule, ServiceIp, Subnet, Vpc};

/// The router, the gRPC service of the same resources, and the IAM rule of each route.
pub fn router(resources: Resources, auth: Arc<AuthClient>) -> (Router, Vec<Rule>, ResourcesServer<Grpc>) {
    let routes = Routes::new("prismnet")
        .kind::<Vpc>()
        .kind::<Subnet>()
        .kind::<Port>()
        .kind::<SecurityGroup>()
        .kind::<SecurityGroupRule>()
        .kind::<VpcRouter>()
        .kind::<FloatingIp>()
        .kind::<ServiceIp>();
    let grpc = routes.grpc(resources.clone(), auth);
    let (router, rules) = routes.finish(resources);
    (router, rules, grpc)
}
