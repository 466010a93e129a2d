//! Volumes, snapshots and attachments on the management API (9093): photon-resource's REST
//! routes under `/api/v1/orgs/{org}/projects/{project}/volumes[/{volume}/{snapshots,attachments}]`
//! and the same as gRPC (`photon.resource.v1.Resources`), each authorized by IAM
//! (`lightningstor:volumes:*`, `lightningstor:snapshots:*`, `lightningstor:attachments:*`).

use std::sync::Arc;

use axum::Router;
use photon_api::resource::v1::resources_server::ResourcesServer;
use photon_auth::{AuthClient, Rule};
use photon_resource::grpc::Grpc;
use photon_resource::rest::Routes;
use photon_resource::Resources;

use super::model::{Attachment, Snapshot, Volume};

pub fn router(resources: Resources, auth: Arc<AuthClient>) -> (Router, Vec<Rule>, ResourcesServer<Grpc>) {
    let routes = Routes::new("lightningstor").kind::<Volume>().kind::<Snapshot>().kind::<Attachment>();
    let grpc = routes.grpc(resources.clone(), auth);
    let (router, rules) = routes.finish(resources);
    (router, rules, grpc)
}
