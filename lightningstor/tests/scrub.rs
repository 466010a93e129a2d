//! The scrub: on three nodes, a chunk rotted on one node's disk and a chunk file lost from
//! another are found without any GET asking for them and rewritten from a replica; on one node
//! alone, a rotted chunk is found and counted but left as it is (there is nothing to mend it from).

mod common;

use std::time::{Duration, Instant};

use common::{chunk_files, metric, Stack};
use http_body_util::{BodyExt, Full};
use hyper::Method;
use photon_s3::S3Client;

async fn put(s3: &S3Client, path: &str, data: &[u8]) {
    let body = Full::new(bytes::Bytes::from(data.to_vec())).map_err(|never| match never {}).boxed();
    let response = s3.send(Method::PUT, path, "", &[("content-length", data.len().to_string())], body).await.unwrap();
    assert_eq!(response.status(), 200, "PUT {path}");
}

const SCRUB: [(&str, &str); 3] = [
    ("LIGHTNINGSTOR_STORAGE_CHUNK_BYTES", "65536"),
    ("LIGHTNINGSTOR_STORAGE_SCRUB_INTERVAL_MS", "300"),
    ("LIGHTNINGSTOR_STORAGE_SCRUB_BYTES_PER_SEC", "0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_mends_rot_and_loss_from_replicas() {
    let stack = Stack::start(&[]).await;
    let nodes = stack.start_nodes(3, &SCRUB).await;
    let s3 = S3Client::new(&nodes[0].endpoint, Some(&stack.ca), stack.tenant.clone(), "us-east-1").unwrap();
    let response = s3.send(Method::PUT, "/bin", "", &[], photon_s3::empty()).await.unwrap();
    assert_eq!(response.status(), 200);
    put(&s3, "/bin/a", &common::data(300_000, 1)).await;
    let files = chunk_files(&nodes[0].server);
    assert_eq!(files, chunk_files(&nodes[1].server), "three copies of every chunk");
    let (rotted, lost) = (files[0].clone(), files[1].clone());
    let root = |i: usize| nodes[i].server.dir().join("data/chunks");
    let good_rotted = std::fs::read(root(0).join(&rotted)).unwrap();
    let good_lost = std::fs::read(root(1).join(&lost)).unwrap();
    let mut bad = good_rotted.clone();
    bad[1000] ^= 0x01;
    std::fs::write(root(0).join(&rotted), &bad).unwrap();
    std::fs::remove_file(root(1).join(&lost)).unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mended = std::fs::read(root(0).join(&rotted)).ok() == Some(good_rotted.clone())
            && std::fs::read(root(1).join(&lost)).ok() == Some(good_lost.clone());
        if mended {
            break;
        }
        assert!(Instant::now() < deadline, "the scrub did not mend the rotted and the lost copy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&nodes[0].server, "lightningstor_scrub_bad_copies_total"), 1.0);
    assert_eq!(metric(&nodes[1].server, "lightningstor_scrub_bad_copies_total"), 1.0);
    assert_eq!(metric(&nodes[2].server, "lightningstor_scrub_bad_copies_total"), 0.0);
    assert!(metric(&nodes[0].server, "lightningstor_chunk_repairs_total") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alone_the_scrub_counts_rot_and_leaves_it() {
    let stack = Stack::start(&SCRUB).await;
    let s3 = S3Client::new(&stack.endpoint, Some(&stack.ca), stack.tenant.clone(), "us-east-1").unwrap();
    s3.send(Method::PUT, "/bin", "", &[], photon_s3::empty()).await.unwrap();
    put(&s3, "/bin/a", &common::data(100_000, 2)).await;
    let file = stack.storage.dir().join("data/chunks").join(&chunk_files(&stack.storage)[0]);
    let mut bad = std::fs::read(&file).unwrap();
    bad[0] ^= 0x01;
    std::fs::write(&file, &bad).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&stack.storage, "lightningstor_scrub_bad_copies_total") == 0.0 {
        assert!(Instant::now() < deadline, "the scrub did not find the rotted copy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(std::fs::read(&file).unwrap(), bad, "nothing to mend it from: left as found");
    let served = match s3.send(Method::GET, "/bin/a", "", &[], photon_s3::empty()).await {
        Ok(response) if response.status() == 200 => response.into_body().collect().await.is_ok(),
        _ => false,
    };
    assert!(!served, "a GET does not serve the rotted copy whole");
}
