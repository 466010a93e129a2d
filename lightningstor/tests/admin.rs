//! LightningStor's management API on its API port: a project's buckets and a bucket's usage
//! over REST (curl) and gRPC (the generated client), behind the auth guard: a token of another
//! project is refused, a missing token is unauthenticated, another project's bucket is not found.

mod common;

use common::Stack;
use http_body_util::{BodyExt, Full};
use photon_api::iam::v1 as iam;
use photon_api::lightningstor::v1 as pb;
use photon_api::lightningstor::v1::buckets_client::BucketsClient;

/// A bearer token for the access key `key` (service accounts log in with their key).
async fn token(stack: &Stack, key: &common::Key) -> String {
    let credentials = iam::issue_token_request::Credentials::AccessKey(iam::AccessKeyCredentials {
        key_id: key.0.clone(),
        secret: key.1.clone(),
    });
    stack
        .env
        .tokens()
        .issue_token(iam::IssueTokenRequest { credentials: Some(credentials) })
        .await
        .unwrap()
        .into_inner()
        .access_token
}

fn with<T>(message: T, token: &str, org: &str, project: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request.metadata_mut().insert("x-photon-org", org.parse().unwrap());
    request.metadata_mut().insert("x-photon-project", project.parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_and_usage_over_rest_and_grpc_behind_the_guard() {
    let stack = Stack::start(&[]).await;
    let s3 = photon_s3::S3Client::new(&stack.endpoint, Some(&stack.ca), stack.tenant.clone(), "us-east-1").unwrap();
    for bucket in ["logs", "media"] {
        s3.send(hyper::Method::PUT, &format!("/{bucket}"), "", &[], photon_s3::empty()).await.unwrap();
    }
    for (key, size) in [("a", 1000usize), ("b", 2500), ("c/d", 10)] {
        let body = Full::new(bytes::Bytes::from(vec![7u8; size])).map_err(|never| match never {}).boxed();
        s3.send(hyper::Method::PUT, &format!("/media/{key}"), "", &[("content-length", size.to_string())], body)
            .await
            .unwrap();
    }
    let tenant = token(&stack, &stack.tenant).await;
    let stranger = token(&stack, &stack.stranger).await;

    // REST.
    let auth = format!("authorization: Bearer {tenant}");
    let (status, body) = stack.storage.curl("GET", "/api/v1/orgs/acme/projects/web/buckets", None, &[&auth]);
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["buckets"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["logs", "media"], "{body}");
    let (status, body) = stack.storage.curl("GET", "/api/v1/orgs/acme/projects/web/buckets/media", None, &[&auth]);
    assert_eq!((status, body["objects"].as_u64(), body["bytes"].as_u64()), (200, Some(3), Some(3510)), "{body}");
    assert_eq!((body["versioning"].as_str(), body["owner"].as_str()), (Some("unversioned"), Some("sa:acme/web/app")));
    let theirs = format!("authorization: Bearer {stranger}");
    let (status, body) = stack.storage.curl("GET", "/api/v1/orgs/acme/projects/web/buckets", None, &[&theirs]);
    assert_eq!(status, 403, "another project's token: {body}");
    let (status, _) = stack.storage.curl("GET", "/api/v1/orgs/acme/projects/web/buckets", None, &[]);
    assert_eq!(status, 401, "no token");
    let (status, body) = stack.storage.curl("GET", "/api/v1/orgs/beta/projects/web/buckets/media", None, &[&theirs]);
    assert_eq!(status, 404, "acme's bucket is not in beta's project: {body}");

    // gRPC.
    let options = photon_client::ChannelOptions { ca: Some(stack.ca.clone()), ..Default::default() };
    let channel = photon_client::lazy_channel(&stack.storage.url(), &options).unwrap();
    let mut client = BucketsClient::new(channel);
    let listed = client.list_buckets(with(pb::ListBucketsRequest {}, &tenant, "acme", "web")).await.unwrap();
    assert_eq!(listed.into_inner().buckets.len(), 2);
    let media = client
        .get_bucket(with(pb::GetBucketRequest { name: "media".into() }, &tenant, "acme", "web"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((media.objects, media.bytes), (3, 3510));
    let refused = client.list_buckets(with(pb::ListBucketsRequest {}, &stranger, "acme", "web")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let missing = client
        .get_bucket(with(pb::GetBucketRequest { name: "nope".into() }, &tenant, "acme", "web"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
}
