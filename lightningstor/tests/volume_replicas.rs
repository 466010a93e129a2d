//! Volumes on three storage nodes: real chainfire, flaredb, IAM and three lightningstor-server
//! processes replicating to each other, QEMU's NBD client writing. A node killed during writes
//! loses nothing that was flushed and is repaired when it returns (even with no node writing
//! the volume any more); a corrupt block is read from
//! another replica and mended; a frozen writer whose lease expired cannot write after the next
//! host took the volume over.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, QemuIo, Stack};
use serde_json::json;

/// Repairs checked often, and a stopped node given up on quickly.
const ENV: [(&str, &str); 2] = [("LIGHTNINGSTOR_REPLICATION_REPAIR_INTERVAL_MS", "300"), ("LIGHTNINGSTOR_REPLICATION_TIMEOUT_MS", "1000")];

struct Rig {
    stack: Stack,
    nodes: Vec<Node>,
    token: String,
    tls: tempfile::TempDir,
}

impl Rig {
    async fn start() -> Self {
        let stack = Stack::start(&[]).await;
        let nodes = stack.start_nodes(3, &ENV).await;
        let token = stack.env.member_token(&stack.root, "acme", "vols", "member").await;
        let tls = tempfile::tempdir().unwrap();
        std::fs::copy(&stack.ca, tls.path().join("ca-cert.pem")).unwrap();
        Self { stack, nodes, token, tls }
    }

    fn api(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let body = body.to_string();
        let (status, json) = self.nodes[0].server.project_call(("acme", "web"), method, path, Some(&body), &self.token);
        assert!((200..300).contains(&status), "{method} {path}: {status} {json}");
        json
    }

    fn attach(&self, volume: &str, host: &str) -> String {
        let made = self.api("POST", &format!("/volumes/{volume}/attachments"), json!({"name": host, "spec": {"host": host}}));
        made["spec"]["token"].as_str().unwrap().to_string()
    }

    fn qemu_io_args(&self, node: usize, export: &str) -> Vec<String> {
        let (host, port) = self.nodes[node].nbd.split_once(':').unwrap();
        vec![
            "--object".into(),
            format!("tls-creds-x509,id=tls0,endpoint=client,dir={}", self.tls.path().display()),
            "--image-opts".into(),
            format!("driver=nbd,host={host},port={port},export={export},tls-creds=tls0"),
        ]
    }

    fn qemu_io(&self, node: usize, export: &str, commands: &[String]) -> (bool, String) {
        let mut c = Command::new("qemu-io");
        c.args(self.qemu_io_args(node, export));
        for command in commands {
            c.args(["-c", command]);
        }
        let out = c.output().expect("qemu-io runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success() && !text.contains("failed") && !text.contains("rror"), text)
    }
}

/// Every extent file (data and sums) under a node's data directory: name → bytes.
fn extents(node: &Node) -> std::collections::BTreeMap<String, Vec<u8>> {
    let dir = node.server.dir().join("data/extents");
    let mut out = std::collections::BTreeMap::new();
    for shard in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(shard.path()).into_iter().flatten().flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".tmp") {
                out.insert(name, std::fs::read(file.path()).unwrap_or_default());
            }
        }
    }
    out
}

/// Whether node `b` holds what node `a` does (a file missing on one reads as zeroes).
fn same_extents(a: &Node, b: &Node) -> bool {
    let (x, y) = (extents(a), extents(b));
    let zero = |v: &Vec<u8>| v.iter().all(|b| *b == 0);
    x.iter().all(|(k, v)| y.get(k).map_or(zero(v), |w| w == v)) && y.iter().all(|(k, v)| x.contains_key(k) || zero(v))
}

async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

fn data_file(node: &Node) -> PathBuf {
    let dir = node.server.dir().join("data/extents");
    for shard in std::fs::read_dir(&dir).unwrap().flatten() {
        for file in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let path = file.path();
            if path.extension().is_none() && std::fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false) {
                return path;
            }
        }
    }
    panic!("no extent on {}", dir.display());
}

fn flip(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0xff], offset).unwrap();
}

#[tokio::test]
async fn a_node_killed_during_writes_loses_nothing_flushed_and_is_repaired_and_a_corrupt_block_is_mended() {
    let mut rig = Rig::start().await;
    rig.api("POST", "/volumes", json!({"name": "disk", "spec": {"size_bytes": 32u64 << 20, "replicas": 3}}));
    let export = rig.attach("disk", "hv1");
    let (ok, out) = rig.qemu_io(0, &export, &["write -P 1 0 8M".into(), "flush".into()]);
    assert!(ok, "{out}");
    for node in &rig.nodes {
        assert!(extents(node).len() >= 4, "every node holds both extents (data and sums): {}", node.id);
    }

    // Node 3 killed while 16 writes, each flushed, go on.
    let commands: Vec<String> = (0..32).flat_map(|i| [format!("write -P {} {}M 512k", 0x40 + i, i / 2), "flush".into()]).collect();
    let mut writer = Command::new("qemu-io");
    writer.args(rig.qemu_io_args(0, &export));
    for c in &commands {
        writer.args(["-c", c]);
    }
    let writer = writer.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    rig.nodes[2].server.process.kill9();
    let out = writer.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("failed"), "two of three replicas take every write: {text}");
    // Each 1 MiB was written twice (two patterns at the same offset): the second stands.
    let reads: Vec<String> = (0..16).map(|i| format!("read -P {} {}M 512k", 0x40 + 2 * i + 1, i)).collect();
    let (ok, out) = rig.qemu_io(0, &export, &reads);
    assert!(ok, "every flushed write reads back: {out}");

    assert!(!same_extents(&rig.nodes[0], &rig.nodes[2]), "node 3 was killed before the writes ended, and missed some");
    // The writer's node restarts meanwhile, so no node holds the volume open: the repair is the
    // idle volumes' one (a node takes the volume's writer lease for it).
    rig.nodes[0].server.process.kill9();
    rig.nodes[0].server.process.start();
    rig.nodes[0].server.wait_healthy(Duration::from_secs(30)).await;
    // It returns and is repaired: its extents become the others' again.
    rig.nodes[2].server.process.start();
    rig.nodes[2].server.wait_healthy(Duration::from_secs(30)).await;
    let took = eventually("node 3 repaired", Duration::from_secs(30), || same_extents(&rig.nodes[0], &rig.nodes[2])).await;
    eprintln!("node 3 repaired {took:?} after it came back");

    // A block rots on node 1 (read first): the read is served from another replica and the
    // block is mended.
    let file = data_file(&rig.nodes[0]);
    flip(&file, 2 * 4096 + 7);
    let (ok, out) = rig.qemu_io(0, &export, &reads);
    assert!(ok, "a corrupt block is read from another replica: {out}");
    let took = eventually("node 1 mended", Duration::from_secs(30), || same_extents(&rig.nodes[0], &rig.nodes[1])).await;
    eprintln!("the corrupt block was mended {took:?} later");
    let _ = &mut rig.stack;
}

#[tokio::test]
async fn a_frozen_writer_whose_lease_expired_cannot_write_after_the_next_host_took_over() {
    let rig = Rig::start().await;
    rig.api("POST", "/volumes", json!({"name": "disk", "spec": {"size_bytes": 16u64 << 20, "replicas": 3}}));
    let a = rig.attach("disk", "hv-a");
    let b = rig.attach("disk", "hv-b");
    // Host A keeps a session open through node 1.
    let mut first = QemuIo::open(&rig.qemu_io_args(0, &a));
    first.send("write -P 10 0 64k");
    first.send("flush");
    first.until("wrote 65536/65536", Duration::from_secs(10));
    let (ok, out) = rig.qemu_io(1, &b, &["read 0 4096".into()]);
    assert!(!ok && out.contains("hv-a"), "host B is refused while host A holds the volume: {out}");

    // Node 1 freezes; its lease expires; host B takes the volume through node 2 and writes.
    let frozen = Frozen(rig.nodes[0].server.process.pid().unwrap() as i32);
    frozen.signal(libc::SIGSTOP);
    let took = eventually("host B takes over", Duration::from_secs(30), || {
        rig.qemu_io(1, &b, &["write -P 11 0 64k".into(), "flush".into()]).0
    })
    .await;
    eprintln!("host B wrote {took:?} after node 1 froze");
    drop(frozen);

    // Host A's late write is refused, and B's data stands.
    first.send("write -P 12 0 64k");
    let text = first.finish(false);
    assert!(text.contains("write failed"), "host A's late write must be refused: {text}");
    let (ok, out) = rig.qemu_io(1, &b, &["read -P 11 0 64k".into()]);
    assert!(ok, "host B's write stands: {out}");
}

/// A process stopped (SIGSTOP) until dropped, even when the test fails first (a stopped
/// process would never answer the harness's SIGTERM).
struct Frozen(i32);

impl Frozen {
    fn signal(&self, signal: i32) {
        // SAFETY: signalling a child process this test started.
        unsafe { libc::kill(self.0, signal) };
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
    }
}
