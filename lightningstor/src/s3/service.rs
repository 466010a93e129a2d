//! The S3 endpoint: a request is authenticated (SigV4 in headers or a presigned URL, keys
//! resolved through IAM) or anonymous, routed by method, target and subresource, and authorized
//! by the bucket's policy and IAM (`allow`). Errors answer as S3 XML documents.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use flaredb_client::records::{RecordError, Records};
use photon_auth::service::ServiceToken;
use photon_auth::sigv2;
use photon_auth::sigv4::{query_pairs, AccessKeys, Credential, Signed};
use photon_auth::{AuthClient, AuthError};

use super::address::{target, virtual_bucket, Target};
use super::error::S3Error;
use super::policy::{arn, Decision, Op, Policy};
use crate::config::S3Section;
use crate::meta::{bucket_key, Bucket};
use crate::replication::Replicas;

/// How long a bucket record read for a GET or LIST is reused.
const BUCKET_CACHE: std::time::Duration = std::time::Duration::from_secs(1);

/// Bucket records recently read, for reads and deletes (`S3::bucket_for_read`).
#[derive(Default)]
pub struct BucketCache(std::sync::Mutex<HashMap<String, (Bucket, std::time::Instant)>>);

impl BucketCache {
    fn get(&self, name: &str) -> Option<Bucket> {
        let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(name).filter(|(_, at)| at.elapsed() < BUCKET_CACHE).map(|(b, _)| b.clone())
    }

    fn insert(&self, name: &str, bucket: &Bucket) {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.retain(|_, (_, at)| at.elapsed() < BUCKET_CACHE);
        }
        cache.insert(name.to_string(), (bucket.clone(), std::time::Instant::now()));
    }

    pub fn forget(&self, name: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
    }
}

/// Everything a request needs.
pub struct S3 {
    pub records: Records,
    pub chunks: Arc<Replicas>,
    pub keys: AccessKeys,
    pub auth: Arc<AuthClient>,
    pub identity: Arc<ServiceToken>,
    pub config: S3Section,
    /// Objects up to this size live in their record (`[storage] inline_bytes`).
    pub inline_bytes: usize,
    pub read_cache: BucketCache,
    /// The thread that computes uploads' MD5 (and signed SHA-256), all bodies in SIMD lanes.
    pub digests: super::digest::Digester,
}

/// An authenticated request.
pub struct Call {
    pub method: Method,
    pub target: Target,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    /// Who signed the request; `None` for an anonymous one (allowed only by a bucket policy).
    pub principal: Option<String>,
    /// A SigV4 signer's secret and credential scope (aws-chunked bodies carry chunk signatures).
    pub signer: Option<(String, Credential)>,
}

impl Call {
    /// The bucket the request names (empty for the service itself).
    pub fn bucket_name(&self) -> &str {
        self.object().0
    }

    /// The (bucket, key) the request names; the key is empty for a bucket.
    pub fn object(&self) -> (&str, &str) {
        match &self.target {
            Target::Object { bucket, key } => (bucket, key),
            Target::Bucket(bucket) => (bucket, ""),
            Target::Service => ("", ""),
        }
    }

    /// A request header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// S3's limits: the request's header section, and the user metadata (`x-amz-meta-*`) in it.
const MAX_HEADER_BYTES: usize = 8 * 1024;
const MAX_METADATA_BYTES: usize = 2 * 1024;

/// Refuses a header section or user metadata over S3's limits.
fn check_header_sizes(headers: &HeaderMap) -> Result<(), S3Error> {
    let size = |only_meta: bool| -> usize {
        headers
            .iter()
            .filter(|(name, _)| !only_meta || name.as_str().starts_with("x-amz-meta-"))
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum()
    };
    let total = size(false);
    if total > MAX_HEADER_BYTES {
        return Err(S3Error::request_header_section_too_large(format!(
            "the request's headers are {total} bytes; the limit is {MAX_HEADER_BYTES}"
        )));
    }
    let meta = size(true);
    if meta > MAX_METADATA_BYTES {
        return Err(S3Error::metadata_too_large(format!(
            "the x-amz-meta-* headers are {meta} bytes; the limit is {MAX_METADATA_BYTES}"
        )));
    }
    Ok(())
}

/// Subresources LightningStor does not implement: answered NotImplemented, never mistaken for
/// a listing or a plain GET/PUT.
const UNSUPPORTED: [&str; 22] = [
    "acl",
    "tagging",
    "lifecycle",
    "cors",
    "website",
    "logging",
    "notification",
    "replication",
    "encryption",
    "object-lock",
    "ownershipControls",
    "publicAccessBlock",
    "accelerate",
    "requestPayment",
    "inventory",
    "analytics",
    "metrics",
    "intelligent-tiering",
    "retention",
    "legal-hold",
    "torrent",
    "restore",
];

impl From<RecordError> for S3Error {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Db(e) => S3Error::service_unavailable(format!("metadata store: {e}")),
            other => S3Error::internal_error(other.to_string()),
        }
    }
}

impl From<AuthError> for S3Error {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::PermissionDenied(why) => S3Error::access_denied(format!("Access Denied: {why}")),
            AuthError::Unauthenticated(why) => S3Error::invalid_access_key_id(why),
            AuthError::Unavailable(why) => S3Error::service_unavailable(why),
        }
    }
}

fn now() -> i64 {
    photon_runtime::time::now_ms() / 1000
}

/// The entry point of the S3 port.
pub async fn handle(State(s3): State<Arc<S3>>, request: Request) -> Response {
    let request_id = photon_runtime::time::now_ms().to_string();
    let resource = request.uri().path().to_string();
    let method = request.method().clone();
    let mut response = match s3.serve(request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(code = e.code, message = %e.message, %resource, "S3 request refused");
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = if method == Method::HEAD { String::new() } else { e.document(&resource, &request_id) };
            let mut response = (status, [("content-type", "application/xml")], body).into_response();
            for (name, value) in &e.headers {
                if let Ok(value) = HeaderValue::from_str(value) {
                    response.headers_mut().insert(*name, value);
                }
            }
            response
        }
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amz-request-id", id);
    }
    response
}

impl S3 {
    async fn serve(&self, request: Request) -> Result<Response, S3Error> {
        let (mut parts, body) = request.into_parts();
        check_header_sizes(&parts.headers)?;
        // HTTP/2 carries the host as `:authority`; signatures name it `host`.
        if !parts.headers.contains_key("host") {
            if let Some(authority) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
                parts.headers.insert("host", authority);
            }
        }
        let host = parts.headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let raw_query = parts.uri.query().unwrap_or_default().to_string();
        let signed = Signed {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: &raw_query,
            headers: &parts.headers,
        };
        // SigV4 (headers or presigned), SigV2 (older tools' presigned URLs), or anonymous.
        let (principal, signer) = match sigv2::parse(&parts.headers, &raw_query) {
            Some(v2) => {
                let bucket = virtual_bucket(&host, &self.config.domain);
                let key = self.keys.verify_v2(&signed, &v2?, bucket.as_deref(), now()).await?;
                (Some(key.principal.clone()), None)
            }
            None if parts.headers.contains_key("authorization") || raw_query.contains("X-Amz-Algorithm=") => {
                let (key, credential) = self.keys.verify_with_credential(&signed, now()).await?;
                (Some(key.principal.clone()), Some((key.secret().to_string(), credential)))
            }
            None => (None, None),
        };
        let call = Call {
            method: parts.method.clone(),
            target: target(&host, parts.uri.path(), &self.config.domain)?,
            query: query_pairs(&raw_query).into_iter().collect(),
            headers: parts.headers,
            principal,
            signer,
        };
        let q = |k: &str| call.query.contains_key(k);
        if let Some(sub) = UNSUPPORTED.iter().find(|sub| q(sub)) {
            return Err(S3Error::not_implemented(format!("the ?{sub} subresource is not implemented")));
        }
        let copy = call.headers.contains_key("x-amz-copy-source");
        match (&call.method, &call.target) {
            (&Method::GET, Target::Service) => self.list_buckets(&call).await,
            (&Method::PUT, Target::Bucket(_)) if q("versioning") => self.put_versioning(&call, body).await,
            (&Method::PUT, Target::Bucket(_)) if q("policy") => self.put_policy(&call, body).await,
            (&Method::PUT, Target::Bucket(_)) => self.create_bucket(&call, body).await,
            (&Method::HEAD, Target::Bucket(_)) => self.head_bucket(&call).await,
            (&Method::DELETE, Target::Bucket(_)) if q("policy") => self.delete_policy(&call).await,
            (&Method::DELETE, Target::Bucket(_)) => self.delete_bucket(&call).await,
            (&Method::POST, Target::Bucket(_)) if q("delete") => self.delete_objects(&call, body).await,
            (&Method::GET, Target::Bucket(_)) if q("location") => self.bucket_location(&call).await,
            (&Method::GET, Target::Bucket(_)) if q("versioning") => self.get_versioning(&call).await,
            (&Method::GET, Target::Bucket(_)) if q("policy") => self.get_policy(&call).await,
            (&Method::GET, Target::Bucket(_)) if q("versions") => self.list_versions(&call).await,
            (&Method::GET, Target::Bucket(_)) if q("uploads") => self.list_uploads(&call).await,
            (&Method::GET, Target::Bucket(_)) => self.list_objects(&call).await,
            (&Method::PUT, Target::Object { .. }) if copy && q("uploadId") => self.upload_part_copy(&call).await,
            (&Method::PUT, Target::Object { .. }) if copy => self.copy_object(&call).await,
            (&Method::PUT, Target::Object { .. }) if q("uploadId") => self.upload_part(&call, body).await,
            (&Method::POST, Target::Object { .. }) if q("uploads") => self.create_upload(&call).await,
            (&Method::POST, Target::Object { .. }) if q("uploadId") => self.complete_upload(&call, body).await,
            (&Method::DELETE, Target::Object { .. }) if q("uploadId") => self.abort_upload(&call).await,
            (&Method::GET, Target::Object { .. }) if q("uploadId") => self.list_parts(&call).await,
            (&Method::PUT, Target::Object { .. }) => self.put_object(&call, body).await,
            (&Method::GET, Target::Object { .. }) => self.get_object(&call, false).await,
            (&Method::HEAD, Target::Object { .. }) => self.get_object(&call, true).await,
            (&Method::DELETE, Target::Object { .. }) => self.delete_object(&call).await,
            (method, _) => Err(S3Error::method_not_allowed(format!("{method} is not allowed on this resource"))),
        }
    }

    /// Whether the caller may do `op` on `bucket` (or its object `key`): the bucket policy's
    /// Deny refuses and its Allow grants; otherwise IAM decides for signed callers (cached).
    pub async fn allow(&self, call: &Call, bucket: &Bucket, op: Op, key: Option<&str>) -> Result<(), S3Error> {
        if let Some(text) = &bucket.policy {
            let policy = Policy::parse(text, &bucket.name).map_err(|e| {
                S3Error::internal_error(format!("bucket {}'s stored policy: {}", bucket.name, e.message))
            })?;
            match policy.decide(call.principal.as_deref(), op.s3, &arn(&bucket.name, key)) {
                Decision::Deny => return Err(S3Error::access_denied("Access Denied: the bucket policy denies it")),
                Decision::Allow => return Ok(()),
                Decision::Silent => {}
            }
        }
        self.allow_iam(call, op, &bucket.resource()).await
    }

    /// Whether IAM lets the signed caller do `op` on `resource` (anonymous callers: no).
    pub async fn allow_iam(&self, call: &Call, op: Op, resource: &str) -> Result<(), S3Error> {
        let Some(principal) = &call.principal else {
            return Err(S3Error::access_denied("Access Denied: anonymous access needs a bucket policy allowing it"));
        };
        let token = self.identity.get().await?;
        Ok(self.auth.authorize_principal(&token, principal, op.iam, resource).await?)
    }

    /// A bucket's record as it is now, or NoSuchBucket: what every change decides on (its
    /// versioning state, that it still exists).
    pub async fn bucket(&self, name: &str) -> Result<Bucket, S3Error> {
        match self.records.get::<Bucket>(&bucket_key(name)).await? {
            Some(bucket) => {
                self.read_cache.insert(name, &bucket.value);
                Ok(bucket.value)
            }
            None => {
                self.read_cache.forget(name);
                Err(S3Error::no_such_bucket(format!("The specified bucket does not exist: {name}")))
            }
        }
    }

    /// A bucket's record for a read or a single-object DELETE, from a cache at most
    /// `BUCKET_CACHE` old (saving a metadata round trip per GET, LIST or DELETE). Decision: a
    /// request on another node may see a bucket's policy or versioning change up to that late,
    /// as S3's own policy and versioning changes take a while to apply (AWS asks for a wait
    /// after enabling versioning before writing); this node forgets its copy on every change.
    pub async fn bucket_for_read(&self, name: &str) -> Result<Bucket, S3Error> {
        match self.read_cache.get(name) {
            Some(bucket) => Ok(bucket),
            None => self.bucket(name).await,
        }
    }
}
