//! Small objects live in their record (`storage.inline_bytes`): no chunk file on disk, the data in
//! flaredb, read back whole, by range and through copies; one byte over the limit is chunked.
//! Inline data survives a kill -9 of LightningStor and deletes leave nothing behind.

mod common;

use std::time::Duration;

use common::{chunk_files, Stack};
use http_body_util::BodyExt;
use hyper::Method;

fn body(bytes: Vec<u8>) -> photon_s3::Body {
    http_body_util::Full::new(bytes::Bytes::from(bytes)).map_err(|never| match never {}).boxed()
}

async fn put(s3: &photon_s3::S3Client, path: &str, data: &[u8]) {
    let length = [("content-length", data.len().to_string())];
    s3.send(Method::PUT, path, "", &length, body(data.to_vec())).await.unwrap();
}

async fn get(s3: &photon_s3::S3Client, path: &str, headers: &[(&str, String)]) -> (u16, Vec<u8>) {
    let response = s3.send(Method::GET, path, "", headers, photon_s3::empty()).await.unwrap();
    let status = response.status().as_u16();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_objects_live_in_their_record_and_large_ones_in_chunks() {
    let mut stack = Stack::start(&[("LIGHTNINGSTOR_STORAGE_INLINE_BYTES", "4096")]).await;
    let s3 = photon_s3::S3Client::new(&stack.endpoint, Some(&stack.ca), stack.tenant.clone(), "us-east-1").unwrap();
    s3.send(Method::PUT, "/small", "", &[], photon_s3::empty()).await.unwrap();
    let (at_limit, over) = (common::data(4096, 1), common::data(4097, 2));
    put(&s3, "/small/at-limit", &at_limit).await;
    put(&s3, "/small/empty", &[]).await;
    assert!(chunk_files(&stack.storage).is_empty(), "objects up to the limit write no chunk");
    put(&s3, "/small/over", &over).await;
    assert_eq!(chunk_files(&stack.storage).len(), 1, "one byte over the limit is a chunk");

    // The data is in the record itself (format 2).
    let mut config = flaredb_client::Config::new([stack.env.flaredb.url()]);
    config.ca = Some(stack.ca.clone());
    let db = flaredb_client::Client::connect(config).await.unwrap();
    let record = db.get("default", b"lightningstor/obj/small/at-limit").await.unwrap().expect("a record");
    assert_eq!(record.value[0], 2, "an inline record");
    assert!(record.value.ends_with(&at_limit), "the record ends with the data");

    assert_eq!(get(&s3, "/small/at-limit", &[]).await, (200, at_limit.clone()));
    assert_eq!(get(&s3, "/small/empty", &[]).await, (200, Vec::new()));
    assert_eq!(get(&s3, "/small/over", &[]).await, (200, over.clone()));
    let (status, part) = get(&s3, "/small/at-limit", &[("range", "bytes=100-199".into())]).await;
    assert_eq!((status, part.as_slice()), (206, &at_limit[100..200]));
    let (_, tail) = get(&s3, "/small/at-limit", &[("range", "bytes=-10".into())]).await;
    assert_eq!(tail, &at_limit[4086..]);

    // A copy of a small object is inline too.
    s3.send(Method::PUT, "/small/copy", "", &[("x-amz-copy-source", "/small/at-limit".into())], photon_s3::empty())
        .await
        .unwrap();
    assert_eq!(get(&s3, "/small/copy", &[]).await, (200, at_limit.clone()));
    assert_eq!(chunk_files(&stack.storage).len(), 1, "the copy wrote no chunk");

    // Acknowledged inline data survives a kill -9.
    stack.storage.process.kill9();
    stack.storage.process.start();
    stack.storage.wait_healthy(Duration::from_secs(30)).await;
    assert_eq!(get(&s3, "/small/at-limit", &[]).await, (200, at_limit));
    assert_eq!(get(&s3, "/small/copy", &[]).await.1.len(), 4096);

    for key in ["at-limit", "empty", "copy"] {
        s3.send(Method::DELETE, &format!("/small/{key}"), "", &[], photon_s3::empty()).await.unwrap();
    }
    let listing = s3.xml(Method::GET, "/small", "list-type=2").await.unwrap();
    assert!(listing.contains("<KeyCount>1</KeyCount>") && listing.contains("<Key>over</Key>"), "{listing}");
    let gone = s3.send(Method::GET, "/small/at-limit", "", &[], photon_s3::empty()).await.unwrap_err();
    assert!(gone.to_string().contains("NoSuchKey"), "{gone}");
}
