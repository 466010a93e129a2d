//! A bucket's settings: versioning (Get/PutBucketVersioning) and its policy
//! (Get/Put/DeleteBucketPolicy). Both live in the bucket's record, changed by compare-and-swap.
//! The policy itself is managed under IAM's decision alone, so a policy can never lock its
//! project's administrators out of changing it.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::bucket::xml_response;
use super::error::S3Error;
use super::policy::{Op, Policy, MAX_POLICY_BYTES};
use super::service::{Call, S3};
use super::xml::{self, Xml};
use crate::meta::{bucket_key, Bucket, Versioning};

impl S3 {
    /// Applies `change` to bucket `name`'s record (retried against concurrent changes).
    async fn change_bucket(&self, name: &str, change: impl Fn(&mut Bucket)) -> Result<(), S3Error> {
        for _ in 0..16 {
            let Some(current) = self.records.get::<Bucket>(&bucket_key(name)).await? else {
                return Err(S3Error::no_such_bucket(format!("The specified bucket does not exist: {name}")));
            };
            let mut bucket = current.value;
            change(&mut bucket);
            if self.records.update(&bucket_key(name), &bucket, current.version).await? {
                self.read_cache.forget(name);
                return Ok(());
            }
        }
        Err(S3Error::service_unavailable("the bucket kept changing under concurrent updates; try again"))
    }

    pub async fn get_versioning(&self, call: &Call) -> Result<Response, S3Error> {
        let bucket = self.bucket(call.bucket_name()).await?;
        self.allow(call, &bucket, Op::GET_VERSIONING, None).await?;
        let mut doc = Xml::new("VersioningConfiguration");
        match bucket.versioning {
            Versioning::Unversioned => {}
            Versioning::Enabled => {
                doc.field("Status", "Enabled");
            }
            Versioning::Suspended => {
                doc.field("Status", "Suspended");
            }
        }
        Ok(xml_response(doc.finish("VersioningConfiguration")))
    }

    pub async fn put_versioning(&self, call: &Call, body: Body) -> Result<Response, S3Error> {
        let bucket = self.bucket(call.bucket_name()).await?;
        self.allow(call, &bucket, Op::PUT_VERSIONING, None).await?;
        let text = xml::body_text(body, "VersioningConfiguration").await?;
        let doc = xml::parse(&text, "VersioningConfiguration")?;
        let state = match xml::text(doc.root_element(), "Status").as_deref() {
            Some("Enabled") => Versioning::Enabled,
            Some("Suspended") => Versioning::Suspended,
            Some(other) => {
                return Err(S3Error::malformed_xml(format!("versioning Status {other:?} is not Enabled or Suspended")))
            }
            None => return Err(S3Error::malformed_xml("the VersioningConfiguration has no Status")),
        };
        if xml::text(doc.root_element(), "MfaDelete").is_some_and(|m| m == "Enabled") {
            return Err(S3Error::not_implemented("MFA delete is not supported"));
        }
        self.change_bucket(&bucket.name, |b| {
            // A bucket never versioned stays so when asked to suspend (as S3 does).
            if !(state == Versioning::Suspended && b.versioning == Versioning::Unversioned) {
                b.versioning = state;
            }
        })
        .await?;
        tracing::info!(bucket = %bucket.name, versioning = ?state, "changed a bucket's versioning");
        Ok(StatusCode::OK.into_response())
    }

    pub async fn get_policy(&self, call: &Call) -> Result<Response, S3Error> {
        let bucket = self.bucket(call.bucket_name()).await?;
        self.allow_iam(call, Op::GET_POLICY, &bucket.resource()).await?;
        match bucket.policy {
            Some(text) => Ok(([("content-type", "application/json")], text).into_response()),
            None => Err(S3Error::no_such_bucket_policy(format!("bucket {} has no policy", bucket.name))),
        }
    }

    pub async fn put_policy(&self, call: &Call, body: Body) -> Result<Response, S3Error> {
        let bucket = self.bucket(call.bucket_name()).await?;
        self.allow_iam(call, Op::PUT_POLICY, &bucket.resource()).await?;
        let bytes = axum::body::to_bytes(body, MAX_POLICY_BYTES + 1)
            .await
            .map_err(|_| S3Error::malformed_policy(format!("the policy is over {MAX_POLICY_BYTES} bytes")))?;
        let text =
            String::from_utf8(bytes.to_vec()).map_err(|_| S3Error::malformed_policy("the policy is not UTF-8"))?;
        Policy::parse(&text, &bucket.name)?;
        self.change_bucket(&bucket.name, |b| b.policy = Some(text.clone())).await?;
        tracing::info!(bucket = %bucket.name, principal = ?call.principal, "set a bucket policy");
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    pub async fn delete_policy(&self, call: &Call) -> Result<Response, S3Error> {
        let bucket = self.bucket(call.bucket_name()).await?;
        self.allow_iam(call, Op::DELETE_POLICY, &bucket.resource()).await?;
        self.change_bucket(&bucket.name, |b| b.policy = None).await?;
        tracing::info!(bucket = %bucket.name, principal = ?call.principal, "removed a bucket policy");
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}
