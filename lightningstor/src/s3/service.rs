//! The S3 endpoint: every request is authenticated (SigV4 in headers or a presigned URL, keys
//! resolved through IAM), routed by method and target, and authorized with IAM for the key's
//! owner on the bucket's project. Errors answer as S3 XML documents.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use flaredb_client::records::{RecordError, Records};
use photon_auth::service::ServiceToken;
use photon_auth::sigv4::{query_pairs, AccessKeys, Credential, Signed};
use photon_auth::{AuthClient, AuthError};

use super::address::{target, Target};
use super::error::S3Error;
use crate::chunks::ChunkStore;
use crate::config::S3Section;
use crate::meta::{bucket_key, Bucket};

/// Everything a request needs.
pub struct S3 {
    pub records: Records,
    pub chunks: Arc<ChunkStore>,
    pub keys: AccessKeys,
    pub auth: Arc<AuthClient>,
    pub identity: Arc<ServiceToken>,
    pub config: S3Section,
}

/// An authenticated request.
pub struct Call {
    pub method: Method,
    pub target: Target,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub principal: String,
    pub secret: String,
    pub credential: Credential,
}

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
    crate::time::now_ms() / 1000
}

/// The entry point of the S3 port.
pub async fn handle(State(s3): State<Arc<S3>>, request: Request) -> Response {
    let request_id = crate::time::now_ms().to_string();
    let resource = request.uri().path().to_string();
    let method = request.method().clone();
    let mut response = match s3.serve(request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(code = e.code, message = %e.message, %resource, "S3 request refused");
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = if method == Method::HEAD { String::new() } else { e.document(&resource, &request_id) };
            (status, [("content-type", "application/xml")], body).into_response()
        }
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amz-request-id", id);
    }
    response
}

impl S3 {
    async fn serve(&self, request: Request) -> Result<Response, S3Error> {
        let (parts, body) = request.into_parts();
        let host = parts.headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let raw_query = parts.uri.query().unwrap_or_default().to_string();
        let signed = Signed {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: &raw_query,
            headers: &parts.headers,
        };
        let anonymous = !parts.headers.contains_key("authorization") && !raw_query.contains("X-Amz-Algorithm=");
        if anonymous {
            return Err(S3Error::access_denied("Access Denied: anonymous requests are not allowed"));
        }
        let (key, credential) = self.keys.verify_with_credential(&signed, now()).await?;
        let call = Call {
            method: parts.method.clone(),
            target: target(&host, parts.uri.path(), &self.config.domain)?,
            query: query_pairs(&raw_query).into_iter().collect(),
            headers: parts.headers,
            principal: key.principal.clone(),
            secret: key.secret().to_string(),
            credential,
        };
        let q = |k: &str| call.query.contains_key(k);
        match (&call.method, &call.target) {
            (&Method::GET, Target::Service) => self.list_buckets(&call).await,
            (&Method::PUT, Target::Bucket(_)) => self.create_bucket(&call).await,
            (&Method::HEAD, Target::Bucket(_)) => self.head_bucket(&call).await,
            (&Method::DELETE, Target::Bucket(_)) => self.delete_bucket(&call).await,
            (&Method::GET, Target::Bucket(_)) if q("location") => self.bucket_location(&call).await,
            (&Method::GET, Target::Bucket(_)) if q("uploads") => self.list_uploads(&call).await,
            (&Method::GET, Target::Bucket(_)) => self.list_objects(&call).await,
            (&Method::PUT, Target::Object { .. }) if call.headers.contains_key("x-amz-copy-source") => {
                Err(S3Error::not_implemented("CopyObject is not implemented yet"))
            }
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

    /// Whether the caller may do `action` on `resource` (IAM decides; cached).
    pub async fn allow(&self, call: &Call, action: &str, resource: &str) -> Result<(), S3Error> {
        let token = self.identity.get().await?;
        Ok(self.auth.authorize_principal(&token, &call.principal, action, resource).await?)
    }

    /// A bucket's record, or NoSuchBucket.
    pub async fn bucket(&self, name: &str) -> Result<Bucket, S3Error> {
        match self.records.get::<Bucket>(&bucket_key(name)).await? {
            Some(bucket) => Ok(bucket.value),
            None => Err(S3Error::no_such_bucket(format!("The specified bucket does not exist: {name}"))),
        }
    }
}
