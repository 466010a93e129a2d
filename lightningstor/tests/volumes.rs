//! Block volumes end to end: real chainfire, flaredb, IAM and lightningstor-server processes,
//! the REST API with tenants' tokens, and QEMU's own NBD client (`qemu-io`, `qemu-img`) and
//! libnbd's (`nbdcopy`, `nbdinfo`) over TLS against the volumes: data written reads back and
//! survives a restart, snapshots never change, clones start as their snapshot, a second writer
//! is refused until the first lets go, deletes that would lose data are refused, and another
//! project sees nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Stack;
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;

struct Volumes {
    stack: Stack,
    tenant: String,
    stranger: String,
    /// `ca-cert.pem` for QEMU's and libnbd's TLS.
    tls: tempfile::TempDir,
}

impl Volumes {
    async fn start() -> Self {
        let stack = Stack::start(&[]).await;
        let tenant = stack.env.member_token(&stack.root, "acme", "vols", "member").await;
        let stranger = stack.env.member_token(&stack.root, "beta", "vols", "member").await;
        let tls = tempfile::tempdir().unwrap();
        std::fs::copy(&stack.ca, tls.path().join("ca-cert.pem")).unwrap();
        Self { stack, tenant, stranger, tls }
    }

    /// REST under acme/web as `token` (the tenant's unless given).
    fn api(&self, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        self.stack.storage.project_call(("acme", "web"), method, path, body.as_deref(), token.unwrap_or(&self.tenant))
    }

    fn expect(&self, status: u16, method: &str, path: &str, body: Option<Value>) -> Value {
        let (got, json) = self.api(method, path, body, None);
        assert_eq!(got, status, "{method} {path}: {json}");
        json
    }

    fn volume(&self, name: &str, size: u64, extra: Value) -> Value {
        let mut spec = json!({"size_bytes": size, "replicas": 1});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        self.expect(201, "POST", "/volumes", Some(json!({"name": name, "spec": spec})))
    }

    /// A new attachment of `volume` for `host`: its export name.
    fn attach(&self, volume: &str, name: &str, spec: Value) -> String {
        let made = self.expect(201, "POST", &format!("/volumes/{volume}/attachments"), Some(json!({"name": name, "spec": spec})));
        made["spec"]["token"].as_str().expect("a token").to_string()
    }

    /// QEMU's image options for an export over TLS.
    fn image(&self, export: &str) -> String {
        let (host, port) = self.stack.nbd.split_once(':').unwrap();
        format!("driver=nbd,host={host},port={port},export={export},tls-creds=tls0")
    }

    fn tls_object(&self) -> String {
        format!("tls-creds-x509,id=tls0,endpoint=client,dir={}", self.tls.path().display())
    }

    /// qemu-io's options for an export.
    fn qemu_args(&self, export: &str) -> Vec<String> {
        vec!["--object".into(), self.tls_object(), "--image-opts".into(), self.image(export)]
    }

    /// `qemu-io` with `commands` on an export: (success, output).
    fn qemu_io(&self, export: &str, commands: &[&str]) -> (bool, String) {
        let mut c = Command::new("qemu-io");
        c.args(["--object", &self.tls_object(), "--image-opts", &self.image(export)]);
        for command in commands {
            c.args(["-c", command]);
        }
        output(&mut c)
    }

    fn nbd_url(&self, export: &str) -> String {
        format!("nbds://{}/{export}?tls-certificates={}", self.stack.nbd, self.tls.path().display())
    }
}

fn output(c: &mut Command) -> (bool, String) {
    let out = c.output().expect("the client runs (scripts/setup installs qemu-utils and libnbd-bin)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // qemu-io exits 0 even when a command failed; its messages say so.
    let failed = text.contains("Pattern verification failed") || text.contains("failed:") || text.contains("error");
    (out.status.success() && !failed, text)
}

fn random_file(dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    let mut x = seed | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

#[tokio::test]
async fn a_volume_takes_writes_over_nbd_and_keeps_them_with_snapshots_clones_and_one_writer() {
    let v = Volumes::start().await;
    let size = 64 * MIB;
    v.volume("disk", size, json!({}));
    let export = v.attach("disk", "hv1", json!({"host": "hv1"}));

    // Patterns across extents (4 MiB), unaligned too, read back through QEMU's driver.
    let (ok, out) = v.qemu_io(
        &export,
        &["write -P 0xab 0 6M", "write -P 0xcd 5M 4096", "write -P 0x11 123 1000", "flush", "read -P 0xab 6000 4000", "read -P 0xcd 5M 4096", "read -P 0x11 123 1000", "read -P 0 10M 1M"],
    );
    assert!(ok, "qemu-io: {out}");
    let (ok, out) = output(Command::new("nbdinfo").args(["--map", &v.nbd_url(&export)]));
    assert!(ok && out.contains("data") && out.contains("hole"), "nbdinfo --map: {out}");

    // An image in and out through qemu-img and nbdcopy, byte-identical.
    let dir = tempfile::tempdir().unwrap();
    let image = random_file(dir.path(), "image.raw", 8 * MIB as usize, 99);
    let (ok, out) = output(
        Command::new("qemu-img")
            .args(["convert", "--object", &v.tls_object(), "-n", "-f", "raw", "--target-image-opts"])
            .arg(&image)
            .arg(v.image(&export)),
    );
    assert!(ok, "qemu-img convert in: {out}");
    let back = dir.path().join("back.raw");
    let (ok, out) = output(Command::new("nbdcopy").arg(v.nbd_url(&export)).arg(&back));
    assert!(ok, "nbdcopy out: {out}");
    let back_data = std::fs::read(&back).unwrap();
    assert_eq!(back_data.len() as u64, size);
    assert!(back_data[..8 * MIB as usize] == std::fs::read(&image).unwrap()[..], "the image came back changed");

    // A snapshot keeps what was written; the volume goes on.
    let snapshot = v.expect(201, "POST", "/volumes/disk/snapshots", Some(json!({"name": "s1", "spec": {}})));
    assert!(snapshot["spec"]["epoch"].as_u64().is_some(), "{snapshot}");
    // Part of an extent (4 MiB) written after the snapshot: the rest of it is kept (copied on
    // write), in the volume as in the snapshot.
    let (ok, out) = v.qemu_io(&export, &["write -P 0x77 0 6M", "flush"]);
    assert!(ok, "{out}");
    let mut expected = back_data.clone();
    expected[..6 * MIB as usize].fill(0x77);
    let now = dir.path().join("now.raw");
    let (ok, out) = output(Command::new("nbdcopy").arg(v.nbd_url(&export)).arg(&now));
    assert!(ok, "{out}");
    assert!(std::fs::read(&now).unwrap() == expected, "the volume lost what the write did not cover");
    let frozen = v.attach("disk", "look", json!({"host": "hv1", "snapshot": "s1"}));
    let frozen_copy = dir.path().join("frozen.raw");
    let (ok, out) = output(Command::new("nbdcopy").arg(v.nbd_url(&frozen)).arg(&frozen_copy));
    assert!(ok, "{out}");
    assert!(std::fs::read(&frozen_copy).unwrap() == back_data, "the snapshot changed");
    let (ok, out) = v.qemu_io(&frozen, &["write -P 1 0 4096"]);
    assert!(!ok, "a snapshot takes no write: {out}");

    // A clone starts as the snapshot; the snapshot it reads is kept while it lives.
    v.volume("copy", size, json!({"source": {"snapshot": {"volume": "disk", "snapshot": "s1"}}}));
    let clone = v.attach("copy", "hv2", json!({"host": "hv2"}));
    let clone_copy = dir.path().join("clone.raw");
    let (ok, out) = output(Command::new("nbdcopy").arg(v.nbd_url(&clone)).arg(&clone_copy));
    assert!(ok, "{out}");
    assert!(std::fs::read(&clone_copy).unwrap() == back_data, "the clone is not its snapshot");
    let (status, body) = v.api("DELETE", "/volumes/disk/snapshots/s1", None, None);
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("source of volume copy"), "{body}");
    let (status, body) = v.api("DELETE", "/volumes/disk", None, None);
    assert_eq!(status, 409, "{body}");
    let (status, body) = v.api("POST", "/volumes", Some(json!({"name": "small", "spec": {"size_bytes": MIB, "source": {"snapshot": {"volume": "disk", "snapshot": "s1"}}}})), None);
    assert_eq!(status, 400, "a clone smaller than its snapshot: {body}");

    // One writer: a second host is refused while the first holds the volume, and gets it once
    // the first session ends.
    let mut first = common::QemuIo::open(&v.qemu_args(&export));
    first.send("read 0 512");
    first.until("read 512/512", Duration::from_secs(10));
    let second = v.attach("disk", "hv9", json!({"host": "hv9"}));
    let (ok, out) = v.qemu_io(&second, &["read 0 4096"]);
    assert!(!ok && out.contains("hv1"), "the second writer is refused while hv1 holds the volume: {out}");
    first.finish(true);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (ok, out) = v.qemu_io(&second, &["read -P 0x77 0 4096", "write -P 0x78 6M 4096"]);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "hv9 never got the volume after hv1 left: {out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Another project sees none of it, can neither attach nor snapshot it, and an unknown
    // export is refused.
    let (status, _) = v.api("GET", "/volumes/disk", None, Some(&v.stranger));
    assert_eq!(status, 403);
    let (status, _) = v.api("POST", "/volumes/disk/attachments", Some(json!({"name": "x", "spec": {"host": "x"}})), Some(&v.stranger));
    assert_eq!(status, 403);
    let (status, _) = v.api("POST", "/volumes/disk/snapshots", Some(json!({"name": "x", "spec": {}})), Some(&v.stranger));
    assert_eq!(status, 403);
    let (status, _) = v.stack.storage.project_call(("beta", "web"), "GET", "/volumes", None, &v.stranger);
    assert_eq!(status, 200, "its own project is fine");

    // Grown online: the next session sees the new size.
    let grown = v.expect(200, "GET", "/volumes/disk", None);
    let body = json!({"spec": {"size_bytes": 96 * MIB, "replicas": 1}, "resource_version": grown["metadata"]["resource_version"]});
    v.expect(200, "PUT", "/volumes/disk", Some(body));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (ok, out) = output(Command::new("nbdinfo").args(["--size", &v.nbd_url(&second)]));
        if ok && out.trim() == (96 * MIB).to_string() {
            break;
        }
        assert!(Instant::now() < deadline, "the volume never grew: {out}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, out) = v.qemu_io(&"0".repeat(64), &["read 0 512"]);
    assert!(!ok, "an unknown export: {out}");
    let (status, body) = v.api("POST", "/volumes", Some(json!({"name": "bad", "spec": {"size_bytes": 1000}})), None);
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("spec.size_bytes"), "{body}");

    // /metrics counts each volume's operations, bytes and latency on this node.
    let (_, metrics) = v.stack.storage.curl("GET", "/metrics", None, &[]);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let writes = metrics
        .lines()
        .find(|l| l.starts_with("lightningstor_volume_bytes_total") && l.contains("volume=\"acme/web/disk\"") && l.contains("op=\"write\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(writes >= (14 * MIB) as f64, "bytes written to disk counted: {writes}\n{metrics}");
    assert!(metrics.contains("lightningstor_volume_op_duration_seconds_bucket"), "{metrics}");

    // A deleted volume's data is freed (its attachment goes first).
    let count = |dir: &Path| -> usize {
        std::fs::read_dir(dir).into_iter().flatten().flatten().map(|d| std::fs::read_dir(d.path()).map(|f| f.count()).unwrap_or(0)).sum()
    };
    let extents_dir = v.stack.storage.dir().join("data/extents");
    v.volume("tmp", 8 * MIB, json!({}));
    let tmp = v.attach("tmp", "hv5", json!({"host": "hv5"}));
    let (ok, out) = v.qemu_io(&tmp, &["write -P 5 0 6M", "flush"]);
    assert!(ok, "{out}");
    let before = count(&extents_dir);
    v.expect(204, "DELETE", "/volumes/tmp/attachments/hv5", None);
    v.expect(204, "DELETE", "/volumes/tmp", None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&extents_dir) > before - 4 {
        assert!(Instant::now() < deadline, "the deleted volume's extents stay: {} of {before} files", count(&extents_dir));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A volume made from an image in one of the project's buckets: byte for byte the image
    // (zeroes after it), attachable once the import is done.
    let image = random_file(dir.path(), "disk.raw", 6 * MIB as usize, 7);
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[2 * MIB as usize..3 * MIB as usize].fill(0);
    std::fs::write(&image, &bytes).unwrap();
    let (id, secret) = v.stack.tenant.clone();
    // boto3, as a tenant uploads an image.
    let upload = "import boto3,sys\nfrom botocore.config import Config\n\
        s3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3], \
        region_name='us-east-1', verify=sys.argv[4], config=Config(s3={'addressing_style': 'path'}))\n\
        s3.create_bucket(Bucket='images')\ns3.upload_file(sys.argv[5], 'images', 'disk.raw')\n";
    let out = Command::new("python3")
        .args(["-c", upload, &v.stack.endpoint, &id, &secret])
        .arg(&v.stack.ca)
        .arg(&image)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(out.status.success(), "upload: {}", String::from_utf8_lossy(&out.stderr));
    let (status, body) = v.api("POST", "/volumes", Some(json!({"name": "tiny", "spec": {"size_bytes": 4 * MIB, "replicas": 1, "source": {"image": {"bucket": "images", "key": "disk.raw"}}}})), None);
    assert_eq!(status, 400, "a volume smaller than its image: {body}");
    let (status, body) = v.api("POST", "/volumes", Some(json!({"name": "elsewhere", "spec": {"size_bytes": 16 * MIB, "source": {"image": {"bucket": "nobody", "key": "x"}}}})), None);
    assert_eq!(status, 400, "{body}");
    v.volume("booted", 16 * MIB, json!({"source": {"image": {"bucket": "images", "key": "disk.raw"}}}));
    let booted = v.attach("booted", "hv6", json!({"host": "hv6"}));
    let copy = dir.path().join("booted.raw");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, out) = output(Command::new("nbdcopy").arg(v.nbd_url(&booted)).arg(&copy));
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the image volume never became attachable: {out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let copied = std::fs::read(&copy).unwrap();
    assert!(copied[..bytes.len()] == bytes[..], "the volume is not its image");
    assert!(copied[bytes.len()..].iter().all(|b| *b == 0));

    // A restart keeps everything flushed.
    let mut v = v;
    v.stack.storage.process.kill9();
    v.stack.storage.process.start();
    v.stack.storage.wait_healthy(Duration::from_secs(30)).await;
    let (ok, out) = v.qemu_io(&export, &["read -P 0x77 0 6M", "read -P 0 8M 1M"]);
    assert!(ok, "after a restart: {out}");
}
