//! The shared SigV4 verifier against IAM's access keys, with requests signed by botocore (the
//! AWS SDK for Python's signer, not ours): header signatures and presigned URLs verify and name
//! the key's principal; tampering, unknown keys and clock skew are refused with S3's codes.

mod common;

use std::process::Command;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use common::{bearer, Env};
use photon_api::iam::v1 as pb;
use std::sync::Arc;

use photon_auth::service::ServiceToken;
use photon_auth::sigv4::{AccessKeys, SigV4Error, Signed};

/// botocore signs `method url` with `headers`; answers the headers it sent (or, presigned, the
/// URL).
fn botocore(key_id: &str, secret: &str, method: &str, url: &str, presign: bool) -> serde_json::Value {
    let script = r#"
import json, sys
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
key, secret, method, url, presign = sys.argv[1:6]
request = AWSRequest(method=method, url=url, headers={"x-amz-meta-note": "  two   spaces "})
creds = Credentials(key, secret)
if presign == "1":
    S3SigV4QueryAuth(creds, "s3", "us-east-1", expires=300).add_auth(request)
else:
    request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
    S3SigV4Auth(creds, "s3", "us-east-1").add_auth(request)
print(json.dumps({"url": request.url, "headers": dict(request.headers.items())}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, key_id, secret, method, url, if presign { "1" } else { "0" }])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "botocore: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn headers_of(signed: &serde_json::Value, host: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(host).unwrap());
    for (k, v) in signed["headers"].as_object().unwrap() {
        headers.insert(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
        );
    }
    headers
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn botocore_signed_requests_verify_against_iam_access_keys() {
    let env = Env::start(&[]).await;
    let root = env.admin_token().await;
    let mut admin = env.admin();
    env.org(&root, "acme", &["web"]).await;
    let sa = pb::CreateServiceAccountRequest { org: "acme".into(), project: "web".into(), name: "backup".into() };
    admin.create_service_account(bearer(&root, sa)).await.unwrap();
    let created = admin
        .create_access_key(bearer(&root, pb::CreateAccessKeyRequest { principal: "sa:acme/web/backup".into() }))
        .await;
    let created = created.unwrap().into_inner();
    let key_id = created.key.unwrap().key_id;

    let options = photon_client::ChannelOptions { ca: Some(env.iam.ca()), ..Default::default() };
    let channel = photon_client::lazy_channel(&env.iam.url(), &options).unwrap();
    let keys = AccessKeys::new(channel, Arc::new(ServiceToken::fixed(root.clone())), Duration::from_secs(30));
    let host = "127.0.0.1:9000";

    // Header signature: the path and query as the client sent them.
    let signed = botocore(
        &key_id,
        &created.secret,
        "GET",
        &format!("https://{host}/bucket/a%20b.txt?list-type=2&prefix=x%2Fy"),
        false,
    );
    let headers = headers_of(&signed, host);
    let request =
        Signed { method: "GET", path: "/bucket/a%20b.txt", query: "list-type=2&prefix=x%2Fy", headers: &headers };
    let key = keys.verify(&request, now()).await.expect("botocore's signature verifies");
    assert_eq!((key.principal.as_str(), key.org.as_str()), ("sa:acme/web/backup", "acme"));
    let tampered = Signed { method: "DELETE", ..request };
    assert_eq!(keys.verify(&tampered, now()).await.unwrap_err(), SigV4Error::SignatureDoesNotMatch);
    let other_path = Signed { path: "/bucket/other.txt", method: "GET", query: request.query, headers: &headers };
    assert_eq!(keys.verify(&other_path, now()).await.unwrap_err().s3_code(), "SignatureDoesNotMatch");
    assert_eq!(keys.verify(&request, now() + 16 * 60).await.unwrap_err(), SigV4Error::RequestTimeTooSkewed);

    // A presigned URL.
    let presigned = botocore(&key_id, &created.secret, "GET", &format!("https://{host}/bucket/report.csv"), true);
    let url = presigned["url"].as_str().unwrap();
    let query = url.split_once('?').unwrap().1.to_string();
    // The client sends the headers it signed (here botocore's x-amz-meta-note).
    let headers = headers_of(&presigned, host);
    let request = Signed { method: "GET", path: "/bucket/report.csv", query: &query, headers: &headers };
    assert_eq!(keys.verify(&request, now()).await.unwrap().principal, "sa:acme/web/backup");
    assert_eq!(keys.verify(&request, now() + 301).await.unwrap_err(), SigV4Error::Expired);

    // An unknown key, and a deleted one (after the cache's TTL).
    let stranger = botocore("PKNOSUCHKEY", "whatever", "GET", &format!("https://{host}/bucket/x"), false);
    let headers = headers_of(&stranger, host);
    let request = Signed { method: "GET", path: "/bucket/x", query: "", headers: &headers };
    assert_eq!(keys.verify(&request, now()).await.unwrap_err().s3_code(), "InvalidAccessKeyId");
    admin.delete_access_key(bearer(&root, pb::DeleteAccessKeyRequest { key_id: key_id.clone() })).await.unwrap();
    let fresh = AccessKeys::new(
        photon_client::lazy_channel(&env.iam.url(), &options).unwrap(),
        Arc::new(ServiceToken::fixed(root)),
        Duration::from_secs(30),
    );
    let signed = botocore(&key_id, &created.secret, "GET", &format!("https://{host}/bucket/x"), false);
    let headers = headers_of(&signed, host);
    let request = Signed { method: "GET", path: "/bucket/x", query: "", headers: &headers };
    assert_eq!(fresh.verify(&request, now()).await.unwrap_err(), SigV4Error::InvalidAccessKeyId(key_id));
}
