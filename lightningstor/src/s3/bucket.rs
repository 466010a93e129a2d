//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.
//! A bucket belongs to a project: the project of the service account whose key creates it, or,
//! for a user's key, the `x-photon-project: <org>/<project>` header.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flaredb_client::records::RecordError;

use super::error::S3Error;
use super::policy::Op;
use super::service::{Call, S3};
use super::xml::{self, Xml};
use crate::meta::{bucket_key, objects_prefix, versions_prefix, Bucket, Object};
use photon_runtime::time::{iso8601, now_ms};

/// The (org, project) a new bucket of `call`'s caller goes to.
fn project_of(call: &Call) -> Result<(String, String), S3Error> {
    if let Some(header) = call.headers.get("x-photon-project").and_then(|v| v.to_str().ok()) {
        let (org, project) = header
            .split_once('/')
            .ok_or_else(|| S3Error::invalid_argument("x-photon-project is not <org>/<project>"))?;
        return Ok((org.to_string(), project.to_string()));
    }
    let principal = call.principal.as_deref().unwrap_or_default();
    let sa = principal.strip_prefix("sa:").ok_or_else(|| {
        S3Error::invalid_request(
            "a user's access key must name the bucket's project in x-photon-project: <org>/<project>; \
             a service account's key creates buckets in its own project",
        )
    })?;
    let parts: Vec<&str> = sa.split('/').collect();
    match parts.as_slice() {
        [org, project, _] => Ok((org.to_string(), project.to_string())),
        _ => Err(S3Error::internal_error(format!("unexpected principal {principal}"))),
    }
}

impl S3 {
    pub async fn list_buckets(&self, call: &Call) -> Result<Response, S3Error> {
        let Some(principal) = &call.principal else {
            return Err(S3Error::access_denied("Access Denied: listing buckets needs a signed request"));
        };
        let buckets: Vec<Bucket> = self.records.list::<Bucket>("bucket/").await?.into_iter().map(|(_, b)| b).collect();
        let mut xml = Xml::new("ListAllMyBucketsResult");
        xml.open("Owner").field("ID", principal).field("DisplayName", principal).close("Owner");
        xml.open("Buckets");
        for bucket in buckets {
            // Only the buckets the caller may see.
            if self.allow(call, &bucket, Op::HEAD_BUCKET, None).await.is_ok() {
                xml.open("Bucket")
                    .field("Name", &bucket.name)
                    .field("CreationDate", iso8601(bucket.created_ms))
                    .close("Bucket");
            }
        }
        xml.close("Buckets");
        Ok(xml_response(xml.finish("ListAllMyBucketsResult")))
    }

    pub async fn create_bucket(&self, call: &Call, body: Body) -> Result<Response, S3Error> {
        let name = call.bucket_name().to_string();
        let Some(owner) = call.principal.clone() else {
            return Err(S3Error::access_denied("Access Denied: creating a bucket needs a signed request"));
        };
        let (org, project) = project_of(call)?;
        let bucket = Bucket {
            name: name.clone(),
            org,
            project,
            created_ms: now_ms(),
            owner,
            versioning: Default::default(),
            policy: None,
        };
        self.allow_iam(call, Op::CREATE_BUCKET, &bucket.resource()).await?;
        // The location constraint is accepted (one region); the body must still be well-formed.
        let config = xml::body_text(body, "CreateBucketConfiguration").await?;
        if !config.trim().is_empty() {
            xml::parse(&config, "CreateBucketConfiguration")?;
        }
        match self.records.create(&bucket_key(&name), &bucket, || format!("bucket {name}")).await {
            Ok(()) => {}
            Err(RecordError::AlreadyExists(_)) => {
                let existing = self.bucket(&name).await?;
                return Err(if existing.org == bucket.org && existing.project == bucket.project {
                    S3Error::bucket_already_owned_by_you(format!("you already own bucket {name}"))
                } else {
                    S3Error::bucket_already_exists(format!("bucket name {name} is taken"))
                });
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(bucket = %name, principal = %bucket.owner, "created a bucket");
        Ok((StatusCode::OK, [("location", format!("/{name}"))]).into_response())
    }

    pub async fn head_bucket(&self, call: &Call) -> Result<Response, S3Error> {
        let bucket = self.bucket_for_read(call.bucket_name()).await?;
        self.allow(call, &bucket, Op::HEAD_BUCKET, None).await?;
        Ok((StatusCode::OK, [("x-amz-bucket-region", self.config.region.clone())]).into_response())
    }

    pub async fn bucket_location(&self, call: &Call) -> Result<Response, S3Error> {
        let bucket = self.bucket_for_read(call.bucket_name()).await?;
        self.allow(call, &bucket, Op::GET_BUCKET_LOCATION, None).await?;
        let doc = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"{}\">{}</LocationConstraint>",
            super::xml::NAMESPACE,
            super::error::xml_escape(&self.config.region)
        );
        Ok(xml_response(doc))
    }

    pub async fn delete_bucket(&self, call: &Call) -> Result<Response, S3Error> {
        let bucket = self.bucket(call.bucket_name()).await?;
        self.allow(call, &bucket, Op::DELETE_BUCKET, None).await?;
        // Empty means no object, no noncurrent version and no delete marker.
        for prefix in [objects_prefix(&bucket.name), versions_prefix(&bucket.name)] {
            if !self.records.list_from::<Object>(&prefix, "", 1).await?.is_empty() {
                return Err(S3Error::bucket_not_empty(format!(
                    "bucket {} is not empty (objects, versions or delete markers remain)",
                    bucket.name
                )));
            }
        }
        self.abort_all(&bucket.name).await?;
        self.records.delete(&bucket_key(&bucket.name)).await?;
        self.read_cache.forget(&bucket.name);
        tracing::info!(bucket = %bucket.name, principal = ?call.principal, "deleted a bucket");
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

pub fn xml_response(body: String) -> Response {
    ([("content-type", "application/xml")], body).into_response()
}
