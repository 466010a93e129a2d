//! The orphan sweep: a chunk file no record names and older than `storage.orphan_grace_ms` is
//! deleted; every chunk a record names stays, however old — current objects, noncurrent
//! versions, parts of an upload still in progress, chunks waiting in the trash — and so does a
//! young orphan (an upload whose record is not written yet looks just like it).

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::{chunk_files, metric, Stack};
use http_body_util::{BodyExt, Full};
use hyper::Method;
use md5::Digest;
use photon_s3::S3Client;

fn body(data: &[u8]) -> http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error> {
    Full::new(bytes::Bytes::from(data.to_vec())).map_err(|never| match never {}).boxed()
}

async fn send(s3: &S3Client, method: Method, path: &str, query: &str, data: &[u8]) -> (u16, String, Vec<u8>) {
    let headers = [("content-length", data.len().to_string())];
    let response = s3.send(method, path, query, &headers, body(data)).await.unwrap();
    let status = response.status().as_u16();
    let version = response.headers().get("x-amz-version-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, version, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let start = text.find(open).expect("opening tag") + open.len();
    &text[start..start + text[start..].find(close).expect("closing tag")]
}

/// Sets the file's modification time `age` into the past.
fn age(path: &Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_orphans_go_and_every_named_chunk_stays() {
    let stack = Stack::start(&[
        ("LIGHTNINGSTOR_STORAGE_CHUNK_BYTES", "65536"),
        ("LIGHTNINGSTOR_STORAGE_SWEEP_INTERVAL_MS", "300"),
        ("LIGHTNINGSTOR_STORAGE_ORPHAN_GRACE_MS", "3600000"),
    ])
    .await;
    let s3 = S3Client::new(&stack.endpoint, Some(&stack.ca), stack.tenant.clone(), "us-east-1").unwrap();
    let (keep, v1, v2, part, dropped) = (
        common::data(100_000, 1),
        common::data(90_000, 2),
        common::data(80_000, 3),
        common::data(70_000, 4),
        common::data(60_000, 5),
    );
    assert_eq!(send(&s3, Method::PUT, "/bin", "", b"").await.0, 200);
    assert_eq!(send(&s3, Method::PUT, "/bin/keep", "", &keep).await.0, 200);
    assert_eq!(send(&s3, Method::PUT, "/bin/dropped", "", &dropped).await.0, 200);
    assert_eq!(send(&s3, Method::DELETE, "/bin/dropped", "", b"").await.0, 204, "its chunks wait in the trash");
    let versioning = b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
    assert_eq!(send(&s3, Method::PUT, "/bin", "versioning", versioning).await.0, 200);
    let (_, first, _) = send(&s3, Method::PUT, "/bin/doc", "", &v1).await;
    assert!(!first.is_empty(), "a versioned PUT answers its version id");
    assert_eq!(send(&s3, Method::PUT, "/bin/doc", "", &v2).await.0, 200);
    let (_, _, created) = send(&s3, Method::POST, "/bin/big", "uploads", b"").await;
    let upload = between(std::str::from_utf8(&created).unwrap(), "<UploadId>", "</UploadId>").to_string();
    let (status, _, _) = send(&s3, Method::PUT, "/bin/big", &format!("partNumber=1&uploadId={upload}"), &part).await;
    assert_eq!(status, 200);

    // Every chunk file is made two days old; two orphans appear, one as old, one just written.
    let root = stack.storage.dir().join("data/chunks");
    let named = chunk_files(&stack.storage);
    assert!(named.len() >= 8, "the objects, the versions, the part and the trash hold chunks: {named:?}");
    for file in &named {
        age(&root.join(file), Duration::from_secs(2 * 86_400));
    }
    let (old, young) = ("ab".repeat(16), "cd".repeat(16));
    for id in [&old, &young] {
        std::fs::create_dir_all(root.join(&id[..2])).unwrap();
        std::fs::write(root.join(&id[..2]).join(id), b"left by a crash").unwrap();
    }
    age(&root.join(&old[..2]).join(&old), Duration::from_secs(2 * 86_400));
    let not_a_chunk = root.join(&old[..2]).join("notes.txt");
    std::fs::write(&not_a_chunk, b"not a chunk").unwrap();
    age(&not_a_chunk, Duration::from_secs(2 * 86_400));

    let deadline = Instant::now() + Duration::from_secs(20);
    while root.join(&old[..2]).join(&old).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!root.join(&old[..2]).join(&old).exists(), "the old orphan was swept");
    tokio::time::sleep(Duration::from_millis(800)).await; // Two more sweeps.
    let mut expected = named.clone();
    expected.push(Path::new(&young[..2]).join(&young));
    expected.push(Path::new(&old[..2]).join("notes.txt"));
    expected.sort();
    let mut now = chunk_files(&stack.storage);
    now.sort();
    assert_eq!(now, expected, "only the old orphan went");
    assert_eq!(metric(&stack.storage, "lightningstor_orphans_removed_total"), 1.0);

    let get = |path: &'static str, query: String| {
        let s3 = &s3;
        async move { send(s3, Method::GET, path, &query, b"").await }
    };
    assert_eq!(get("/bin/keep", String::new()).await.2, keep);
    assert_eq!(get("/bin/doc", String::new()).await.2, v2);
    assert_eq!(get("/bin/doc", format!("versionId={first}")).await.2, v1, "the noncurrent version reads back");
    let complete = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"{:x}\"</ETag></Part></CompleteMultipartUpload>",
        md5::Md5::digest(&part)
    );
    let (status, _, answer) =
        send(&s3, Method::POST, "/bin/big", &format!("uploadId={upload}"), complete.as_bytes()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(get("/bin/big", String::new()).await.2, part, "the part's chunks were kept for the upload");
}
