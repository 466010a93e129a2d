//! Deferred deletion: a deleted object's chunks stay on disk for `storage.delete_delay_ms`
//! (counted in `/metrics`) and go after it; a kill -9 in between does not orphan them, since
//! the restarted server finds them in its trash log. Other objects are untouched.

mod common;

use std::time::{Duration, Instant};

use common::{chunk_files, metric, Stack};
use http_body_util::{BodyExt, Full};
use hyper::Method;
use photon_s3::{empty, S3Client};

async fn put(s3: &S3Client, path: &str, data: &[u8]) {
    let body = Full::new(bytes::Bytes::from(data.to_vec())).map_err(|never| match never {}).boxed();
    let response = s3.send(Method::PUT, path, "", &[("content-length", data.len().to_string())], body).await.unwrap();
    assert_eq!(response.status(), 200, "PUT {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_chunks_go_after_the_delay_even_across_a_kill() {
    let delay = Duration::from_secs(5);
    let mut stack = Stack::start(&[
        ("LIGHTNINGSTOR_STORAGE_CHUNK_BYTES", "65536"),
        ("LIGHTNINGSTOR_STORAGE_DELETE_DELAY_MS", &delay.as_millis().to_string()),
    ])
    .await;
    let s3 = S3Client::new(&stack.endpoint, Some(&stack.ca), stack.tenant.clone(), "us-east-1").unwrap();
    s3.send(Method::PUT, "/bin", "", &[], empty()).await.unwrap();
    let (keep, gone) = (common::data(100_000, 1), common::data(200_000, 2));
    put(&s3, "/bin/keep", &keep).await;
    let before_gone = chunk_files(&stack.storage);
    put(&s3, "/bin/gone", &gone).await;
    let all = chunk_files(&stack.storage);
    assert_eq!(all.len(), before_gone.len() + 4, "200 000 bytes in 64 KiB chunks: {all:?}");

    let response = s3.send(Method::DELETE, "/bin/gone", "", &[], empty()).await.unwrap();
    assert_eq!(response.status(), 204);
    let deleted = Instant::now();
    let missing = s3.send(Method::GET, "/bin/gone", "", &[], empty()).await;
    assert!(missing.as_ref().is_err_and(|e| e.to_string().contains("NoSuchKey")), "gone at once: {missing:?}");
    assert_eq!(chunk_files(&stack.storage), all, "its chunks wait for the delay");
    assert_eq!(metric(&stack.storage, "lightningstor_trash_bytes"), 200_000.0);

    stack.storage.process.kill9();
    stack.storage.process.start();
    stack.storage.wait_healthy(Duration::from_secs(30)).await;
    assert_eq!(metric(&stack.storage, "lightningstor_trash_bytes"), 200_000.0, "the trash log survived the kill");
    if deleted.elapsed() < delay - Duration::from_millis(500) {
        assert_eq!(chunk_files(&stack.storage), all, "nothing went before the delay");
    }

    let deadline = Instant::now() + delay + Duration::from_secs(15);
    while chunk_files(&stack.storage) != before_gone && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(chunk_files(&stack.storage), before_gone, "the deleted object's chunks went, and only they");
    assert!(deleted.elapsed() >= delay, "not before the delay ({:?})", deleted.elapsed());
    assert_eq!(metric(&stack.storage, "lightningstor_trash_bytes"), 0.0);
    let response = s3.send(Method::GET, "/bin/keep", "", &[], empty()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), keep);
}
