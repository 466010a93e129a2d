//! The management API on the API port (9093): a project's buckets and a bucket's usage, as
//! gRPC (`photon.lightningstor.v1.Buckets`) and REST
//! (`GET /api/v1/orgs/{org}/projects/{project}/buckets[/{bucket}]`). photon-auth's guard checks
//! the bearer token and asks IAM before a handler runs; gRPC calls name the project in the
//! `x-photon-org` and `x-photon-project` metadata.

use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flaredb_client::records::Records;
use photon_api::lightningstor::v1 as pb;
use photon_api::lightningstor::v1::buckets_server::{Buckets, BucketsServer};
use photon_auth::Rule;
use tonic::{Request, Status};

use crate::meta::{bucket_key, objects_prefix, Bucket, Object, Versioning};

const BUCKETS: &str = "/api/v1/orgs/{org}/projects/{project}/buckets";
const BUCKET: &str = "/api/v1/orgs/{org}/projects/{project}/buckets/{bucket}";

/// What each route and RPC needs from IAM.
pub fn rules() -> Vec<Rule> {
    let project = "orgs/{org}/projects/{project}";
    let grpc_project = "orgs/{header:x-photon-org}/projects/{header:x-photon-project}";
    vec![
        Rule::new(Some(Method::GET), BUCKETS, "lightningstor:buckets:list", project),
        Rule::new(
            Some(Method::GET),
            BUCKET,
            "lightningstor:buckets:get",
            "orgs/{org}/projects/{project}/buckets/{bucket}",
        ),
        Rule::grpc("/photon.lightningstor.v1.Buckets/ListBuckets", "lightningstor:buckets:list", grpc_project),
        Rule::grpc("/photon.lightningstor.v1.Buckets/GetBucket", "lightningstor:buckets:get", grpc_project),
    ]
}

#[derive(Clone)]
pub struct Admin {
    records: Records,
}

fn info(bucket: Bucket) -> pb::BucketInfo {
    let versioning = match bucket.versioning {
        Versioning::Unversioned => "unversioned",
        Versioning::Enabled => "enabled",
        Versioning::Suspended => "suspended",
    };
    pb::BucketInfo {
        name: bucket.name,
        org: bucket.org,
        project: bucket.project,
        owner: bucket.owner,
        created_ms: bucket.created_ms,
        versioning: versioning.into(),
        has_policy: bucket.policy.is_some(),
        objects: 0,
        bytes: 0,
    }
}

fn unavailable(e: flaredb_client::records::RecordError) -> Status {
    Status::unavailable(format!("bucket metadata cannot be read: {e}"))
}

impl Admin {
    pub fn new(records: Records) -> Self {
        Self { records }
    }

    async fn list(&self, org: &str, project: &str) -> Result<pb::ListBucketsResponse, Status> {
        let all = self.records.list::<Bucket>("bucket/").await.map_err(unavailable)?;
        let buckets =
            all.into_iter().map(|(_, b)| b).filter(|b| b.org == org && b.project == project).map(info).collect();
        Ok(pb::ListBucketsResponse { buckets })
    }

    /// The bucket with its usage, read page by page over its current versions.
    async fn get(&self, org: &str, project: &str, name: &str) -> Result<pb::BucketInfo, Status> {
        let bucket = self.records.get::<Bucket>(&bucket_key(name)).await.map_err(unavailable)?;
        let Some(bucket) = bucket.map(|b| b.value).filter(|b| b.org == org && b.project == project) else {
            return Err(Status::not_found(format!("project {org}/{project} has no bucket {name}")));
        };
        let mut info = info(bucket);
        let prefix = objects_prefix(name);
        let mut from = String::new();
        loop {
            let page = self.records.list_from::<Object>(&prefix, &from, 1000).await.map_err(unavailable)?;
            let full = page.len() == 1000;
            for (_, object) in page.iter().filter(|(_, o)| !o.delete_marker) {
                info.objects += 1;
                info.bytes += object.size;
            }
            match page.last() {
                Some((key, _)) if full => from = format!("{key}\0"),
                _ => break,
            }
        }
        Ok(info)
    }

    /// The REST routes.
    pub fn router(self) -> Router {
        Router::new().route(BUCKETS, get(list_route)).route(BUCKET, get(get_route)).with_state(self)
    }

    pub fn grpc(self) -> BucketsServer<Self> {
        BucketsServer::new(self)
    }
}

fn answer<T: serde::Serialize>(result: Result<T, Status>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(status) => photon_runtime::rest::status_response(&status),
    }
}

async fn list_route(State(admin): State<Admin>, Path((org, project)): Path<(String, String)>) -> Response {
    answer(admin.list(&org, &project).await)
}

async fn get_route(
    State(admin): State<Admin>,
    Path((org, project, bucket)): Path<(String, String, String)>,
) -> Response {
    answer(admin.get(&org, &project, &bucket).await)
}

/// The project a gRPC call names (the guard already decided on it).
fn project<T>(request: &Request<T>) -> Result<(String, String), Status> {
    let get = |name: &str| {
        request
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| Status::invalid_argument(format!("the call needs {name} metadata")))
    };
    Ok((get("x-photon-org")?, get("x-photon-project")?))
}

#[tonic::async_trait]
impl Buckets for Admin {
    async fn list_buckets(
        &self,
        request: Request<pb::ListBucketsRequest>,
    ) -> Result<tonic::Response<pb::ListBucketsResponse>, Status> {
        let (org, project) = project(&request)?;
        Ok(tonic::Response::new(self.list(&org, &project).await?))
    }

    async fn get_bucket(
        &self,
        request: Request<pb::GetBucketRequest>,
    ) -> Result<tonic::Response<pb::BucketInfo>, Status> {
        let (org, project) = project(&request)?;
        let name = request.into_inner().name;
        Ok(tonic::Response::new(self.get(&org, &project, &name).await?))
    }
}
