//! Object records that an earlier version wrote as JSON (before the compact form of
//! `meta::record`) still list, read, and delete: listings fetch only each record's head and read
//! a JSON record again whole.

mod common;

use common::Stack;
use hyper::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_records_of_earlier_versions_still_list_read_and_delete() {
    let stack = Stack::start(&[]).await;
    let s3 = photon_s3::S3Client::new(&stack.endpoint, Some(&stack.ca), stack.tenant.clone(), "us-east-1").unwrap();
    s3.send(Method::PUT, "/old", "", &[], photon_s3::empty()).await.unwrap();
    let body = http_body_util::Full::new(bytes::Bytes::from_static(b"hello"));
    let body = http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(body, |never| match never {}));
    s3.send(Method::PUT, "/old/new", "", &[("content-length", "5".into())], body).await.unwrap();

    let mut config = flaredb_client::Config::new([stack.env.flaredb.url()]);
    config.ca = Some(stack.ca.clone());
    let db = flaredb_client::Client::connect(config).await.unwrap();
    let empty_md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let legacy = serde_json::json!({
        "key": "legacy", "size": 0, "etag": empty_md5, "content_type": "text/plain", "headers": {},
        "modified_ms": 1_700_000_000_000i64, "chunks": [],
    });
    db.put("default", b"lightningstor/obj/old/legacy", legacy.to_string().as_bytes()).await.unwrap();

    let listing = s3.xml(Method::GET, "/old", "list-type=2").await.unwrap();
    assert!(listing.contains("<KeyCount>2</KeyCount>"), "{listing}");
    assert!(listing.contains(&format!("<Key>legacy</Key><LastModified>2023-11-14T22:13:20.000Z</LastModified><ETag>&quot;{empty_md5}&quot;</ETag><Size>0</Size>")), "{listing}");
    assert!(listing.contains("<Key>new</Key>"), "{listing}");

    let got = s3.send(Method::GET, "/old/legacy", "", &[], photon_s3::empty()).await.unwrap();
    assert_eq!(got.headers()["content-type"], "text/plain");
    s3.send(Method::DELETE, "/old/legacy", "", &[], photon_s3::empty()).await.unwrap();
    let listing = s3.xml(Method::GET, "/old", "list-type=2").await.unwrap();
    assert!(listing.contains("<KeyCount>1</KeyCount>") && !listing.contains("legacy"), "{listing}");
}
