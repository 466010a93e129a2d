//! LightningStor against boto3, the AWS SDK for Python, unchanged
//! (`tests/clients/boto3_suite.py`): buckets, small and multipart objects, listing, ranges,
//! copies (UploadPartCopy too), presigned GETs through curl, DeleteObjects, versioning with
//! delete markers, bucket policies with anonymous curl, virtual-host style, tenant isolation and
//! errors. Behind it: real chainfire, flaredb, IAM and two lightningstor-servers (TLS, and plain
//! HTTP with `s3.domain` for virtual hosts).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{run, Stack};
use photon_testkit::{free_port, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_suite_passes() {
    let stack = Stack::start(&[("LIGHTNINGSTOR_STORAGE_CHUNK_BYTES", "65536")]).await;
    let intern = stack.account("intern", "member").await;
    let plain = format!("127.0.0.1:{}", free_port());
    let credentials = stack.env.iam.dir().join("data/services/lightningstor.json");
    let (flaredb, iam) = (stack.env.flaredb.url(), stack.env.iam.url());
    let mut vhost = TestServer::with_shared_ca(
        "lightningstor-server",
        stack.env.ca.path(),
        &["--flaredb", &flaredb, "--iam", &iam, "--s3-listen", &plain],
    );
    vhost
        .process
        .env("LIGHTNINGSTOR_IAM_CREDENTIALS_FILE", &credentials)
        .env("LIGHTNINGSTOR_S3_PLAINTEXT", "true")
        .env("LIGHTNINGSTOR_S3_DOMAIN", "localhost");
    vhost.process.start();
    vhost.wait_healthy(Duration::from_secs(30)).await;

    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests");
    let script = Path::new(&manifest).join("tests/clients/boto3_suite.py");
    let ca = stack.ca.to_string_lossy().into_owned();
    let plain_endpoint = format!("http://localhost:{}", plain.rsplit(':').next().unwrap());
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        run(
            "python3",
            &[script.to_str().unwrap()],
            &[
                ("S3_ENDPOINT", stack.endpoint.as_str()),
                ("S3_CA", ca.as_str()),
                ("S3_PLAIN_ENDPOINT", plain_endpoint.as_str()),
                ("TENANT_ID", stack.tenant.0.as_str()),
                ("TENANT_SECRET", stack.tenant.1.as_str()),
                ("STRANGER_ID", stack.stranger.0.as_str()),
                ("STRANGER_SECRET", stack.stranger.1.as_str()),
                ("INTERN_ID", intern.0.as_str()),
                ("INTERN_SECRET", intern.1.as_str()),
            ],
        )
    })
    .await
    .unwrap();
    assert!(ok, "the boto3 suite failed:\n{out}\n{err}");
    assert!(out.contains("boto3 suite passed"), "{out}");
}
