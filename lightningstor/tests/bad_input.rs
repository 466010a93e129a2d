//! Bad input from the network (`tests/clients/bad_input.py`, requests signed by botocore):
//! malformed XML, wrong Content-MD5, oversized headers and metadata, invalid bucket names and
//! keys, bodies over the limit, uploads cut off mid-body. Each gets an S3 error naming the
//! problem, nothing partial becomes visible, and no orphaned chunk stays on disk.

mod common;

use common::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_s3_errors_and_leaves_nothing() {
    let mut stack = Stack::start(&[
        ("LIGHTNINGSTOR_S3_MAX_OBJECT_BYTES", "1048576"),
        ("LIGHTNINGSTOR_STORAGE_CHUNK_BYTES", "65536"),
        ("LIGHTNINGSTOR_STORAGE_DELETE_DELAY_MS", "0"),
    ])
    .await;
    let (ok, out, err) = stack.python("bad_input.py", &[], &[]).await;
    assert!(ok, "the bad input suite failed:\n{out}\n{err}");
    assert!(out.contains("bad input suite passed"), "{out}");
    // Dropped objects' chunks are removed in the background, within moments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut left = common::chunk_files(&stack.storage);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = common::chunk_files(&stack.storage);
    }
    assert!(left.is_empty(), "chunks stayed on disk after every object and upload went: {left:?}");
    assert!(stack.storage.wait_healthy(std::time::Duration::from_secs(5)).await["status"] == "healthy");
}
