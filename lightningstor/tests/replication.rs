//! Three LightningStor nodes replicating every chunk (tests/clients/replication_suite.py drives
//! the S3 side with boto3): kill -9 one node during concurrent uploads and every acknowledged
//! object reads back byte-identical through the others; the node restarts and repairs itself
//! from its hints, until it alone can serve everything; a chunk corrupted on disk is detected on
//! read and rewritten from a replica.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Node, Stack};

/// Runs one phase of the suite against `endpoints`.
async fn phase(stack: &Stack, name: &str, endpoints: &[&Node], manifest: &Path, kill_pid: u32) {
    let endpoints: Vec<String> = endpoints.iter().map(|n| n.endpoint.clone()).collect();
    let (endpoints, manifest, pid) = (endpoints.join(","), manifest.to_string_lossy(), kill_pid.to_string());
    let env = [("ENDPOINTS", endpoints.as_str()), ("MANIFEST", manifest.as_ref()), ("KILL_PID", pid.as_str())];
    let (ok, out, err) = stack.python("replication_suite.py", &[name], &env).await;
    assert!(ok && out.contains("phase passed"), "replication suite failed:\n{out}\n{err}");
    eprintln!("{out}");
}

fn chunk_files(node: &Node) -> Vec<PathBuf> {
    common::chunk_files(&node.server)
}

fn metric(node: &Node, name: &str) -> f64 {
    common::metric(&node.server, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_a_kill_repair_and_mend_corruption() {
    let stack = Stack::start(&[]).await;
    let mut nodes = stack
        .start_nodes(
            3,
            &[("LIGHTNINGSTOR_STORAGE_CHUNK_BYTES", "65536"), ("LIGHTNINGSTOR_REPLICATION_REPAIR_INTERVAL_MS", "300")],
        )
        .await;
    let manifest = tempfile::NamedTempFile::new().unwrap();

    // Uploads through n1 and n2 while n3 is killed; all acknowledged objects read back.
    let victim = nodes[2].server.process.pid().unwrap();
    phase(&stack, "write", &[&nodes[0], &nodes[1]], manifest.path(), victim).await;
    assert!(nodes[2].server.process.try_wait().is_some(), "n3 was killed");
    let missed = metric(&nodes[0], "lightningstor_replica_write_failures_total")
        + metric(&nodes[1], "lightningstor_replica_write_failures_total");
    assert!(missed > 0.0, "writes went on without n3, each leaving a repair hint");
    let before = chunk_files(&nodes[2]).len();
    assert!(before < chunk_files(&nodes[0]).len(), "n3 missed chunks while it was down");

    // n3 returns and repairs itself in the background.
    nodes[2].server.process.start();
    nodes[2].server.wait_healthy(Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = nodes[2].server.wait_healthy(Duration::from_secs(5)).await;
        if health["repairs_pending"] == 0 && chunk_files(&nodes[2]).len() == chunk_files(&nodes[0]).len() {
            break;
        }
        assert!(Instant::now() < deadline, "n3 did not catch up: {health}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(metric(&nodes[2], "lightningstor_chunk_repairs_total") > 0.0);
    assert_eq!(chunk_files(&nodes[2]), chunk_files(&nodes[0]), "n3 holds every chunk again");

    // With n1 and n2 gone, n3 alone serves every acknowledged object.
    nodes[0].server.process.kill9();
    nodes[1].server.process.kill9();
    phase(&stack, "read", &[&nodes[2]], manifest.path(), 0).await;

    // A chunk rotted on n1's disk is detected on read and rewritten from a replica.
    for node in &mut nodes[..2] {
        node.server.process.start();
        node.server.wait_healthy(Duration::from_secs(30)).await;
    }
    let victim = chunk_files(&nodes[0])[0].clone();
    let on_n1 = nodes[0].server.dir().join("data/chunks").join(&victim);
    let good = std::fs::read(nodes[1].server.dir().join("data/chunks").join(&victim)).unwrap();
    let mut rotten = good.clone();
    rotten[good.len() / 2] ^= 0x5a;
    std::fs::write(&on_n1, &rotten).unwrap();
    phase(&stack, "read", &[&nodes[0]], manifest.path(), 0).await;
    assert!(std::fs::read(&on_n1).unwrap() == good, "the corrupt copy was rewritten from a replica");
    assert!(metric(&nodes[0], "lightningstor_chunk_repairs_total") >= 1.0);
}
