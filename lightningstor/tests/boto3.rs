//! LightningStor against boto3, the AWS SDK for Python, unchanged
//! (`tests/clients/boto3_suite.py`): buckets, small and multipart objects, listing, ranges,
//! copies (UploadPartCopy too), presigned GETs through curl, DeleteObjects, versioning with
//! delete markers, bucket policies with anonymous curl, virtual-host style, tenant isolation and
//! errors. Behind it: real chainfire, flaredb, IAM and two lightningstor-servers (TLS, and plain
//! HTTP with `s3.domain` for virtual hosts).

mod common;

use std::time::Duration;

use common::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_suite_passes() {
    let stack = Stack::start(&[("LIGHTNINGSTOR_STORAGE_CHUNK_BYTES", "65536")]).await;
    let intern = stack.account("intern", "member").await;
    let (mut vhost, plain) =
        stack.server(&[("LIGHTNINGSTOR_S3_PLAINTEXT", "true"), ("LIGHTNINGSTOR_S3_DOMAIN", "localhost")]);
    vhost.process.start();
    vhost.wait_healthy(Duration::from_secs(30)).await;
    let plain_endpoint = format!("http://localhost:{}", plain.rsplit(':').next().unwrap());
    let (stranger_id, stranger_secret) = (stack.stranger.0.clone(), stack.stranger.1.clone());
    let env = [
        ("S3_PLAIN_ENDPOINT", plain_endpoint.as_str()),
        ("STRANGER_ID", stranger_id.as_str()),
        ("STRANGER_SECRET", stranger_secret.as_str()),
        ("INTERN_ID", intern.0.as_str()),
        ("INTERN_SECRET", intern.1.as_str()),
    ];
    let (ok, out, err) = stack.python("boto3_suite.py", &[], &env).await;
    assert!(ok, "the boto3 suite failed:\n{out}\n{err}");
    assert!(out.contains("boto3 suite passed"), "{out}");
}
