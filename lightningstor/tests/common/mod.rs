//! What LightningStor's client tests stand on: real chainfire, flaredb and IAM processes (IAM's
//! test environment), a lightningstor-server acting as the service account IAM's first boot
//! provisions, and tenants' access keys; plus curl for presigned and anonymous requests.

#![allow(dead_code)] // Each test binary uses a different part.

#[path = "../../../iam/tests/common/mod.rs"]
pub mod iam_env;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use iam_env::Env;
use photon_testkit::{free_port, TestServer};

/// An access key: (id, secret).
pub type Key = (String, String);

pub struct Stack {
    pub env: Env,
    pub root: String,
    pub storage: TestServer,
    /// `https://127.0.0.1:<s3 port>`.
    pub endpoint: String,
    /// The S3 port's `host:port`.
    pub listen: String,
    pub ca: PathBuf,
    /// The NBD port's `host:port` (volumes).
    pub nbd: String,
    /// The iSCSI port's `host:port`.
    pub iscsi: String,
    /// `sa:acme/web/app`, a member of project acme/web.
    pub tenant: Key,
    /// `sa:beta/web/app`, a member of another project.
    pub stranger: Key,
}

impl Stack {
    /// The chain, two tenants, and lightningstor-server with `env` (its `LIGHTNINGSTOR_*`).
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let iam = Env::start(&[("IAM_BOOTSTRAP_SERVICES", "[\"lightningstor\"]")]).await;
        let root = iam.admin_token().await;
        let credentials = iam.iam.dir().join("data/services/lightningstor.json");
        assert!(credentials.exists(), "IAM wrote LightningStor's credentials");
        iam.org(&root, "acme", &["web"]).await;
        iam.org(&root, "beta", &["web"]).await;
        let tenant = account(&iam, &root, "acme", "app", "member").await;
        let stranger = account(&iam, &root, "beta", "app", "member").await;
        let listen = format!("127.0.0.1:{}", free_port());
        let (flaredb, iam_url, chainfire) = (iam.flaredb.url(), iam.iam.url(), iam.chainfire.url());
        let mut storage = TestServer::with_shared_ca(
            "lightningstor-server",
            iam.ca.path(),
            &["--flaredb", &flaredb, "--chainfire", &chainfire, "--iam", &iam_url, "--s3-listen", &listen],
        );
        storage.process.env("LIGHTNINGSTOR_IAM_CREDENTIALS_FILE", &credentials);
        let nbd = format!("127.0.0.1:{}", free_port());
        storage.process.env("LIGHTNINGSTOR_VOLUMES_NBD_LISTEN", &nbd);
        let iscsi = format!("127.0.0.1:{}", free_port());
        storage.process.env("LIGHTNINGSTOR_VOLUMES_ISCSI_LISTEN", &iscsi);
        for (k, v) in env {
            storage.process.env(k, v);
        }
        storage.process.start();
        let health = storage.wait_healthy(Duration::from_secs(30)).await;
        assert_eq!((health["volumes"].as_u64(), health["chainfire"].as_str()), (Some(0), Some("connected")), "{health}");
        let ca = storage.ca();
        Self { env: iam, root, storage, endpoint: format!("https://{listen}"), listen, ca, nbd, iscsi, tenant, stranger }
    }

    /// A new service account `name` in acme/web with `role` there; its access key.
    pub async fn account(&self, name: &str, role: &str) -> Key {
        account(&self.env, &self.root, "acme", name, role).await
    }

    /// curl on `url` (trusting the platform CA): (status, body).
    pub fn curl(&self, method: &str, url: &str) -> (u16, Vec<u8>) {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&self.ca)
            .args(["-X", method, "-o", "-", "-w", "\n%{http_code}", url])
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
        let mut body = out.stdout;
        let split = body.iter().rposition(|b| *b == b'\n').unwrap();
        let status = String::from_utf8_lossy(&body[split + 1..]).trim().parse().unwrap();
        body.truncate(split);
        (status, body)
    }
}

/// One node of a replicated LightningStor cluster.
pub struct Node {
    pub id: String,
    pub server: TestServer,
    /// `https://127.0.0.1:<s3 port>`.
    pub endpoint: String,
    /// The NBD port's `host:port`.
    pub nbd: String,
}

impl Stack {
    /// One more lightningstor-server on this stack's flaredb and IAM, with `env`, not started;
    /// and its S3 `host:port`.
    pub fn server(&self, env: &[(&str, &str)]) -> (TestServer, String) {
        let credentials = self.env.iam.dir().join("data/services/lightningstor.json");
        let (flaredb, iam, chainfire) = (self.env.flaredb.url(), self.env.iam.url(), self.env.chainfire.url());
        let listen = format!("127.0.0.1:{}", free_port());
        let mut server = TestServer::with_shared_ca(
            "lightningstor-server",
            self.env.ca.path(),
            &["--flaredb", &flaredb, "--chainfire", &chainfire, "--iam", &iam, "--s3-listen", &listen],
        );
        server.process.env("LIGHTNINGSTOR_IAM_CREDENTIALS_FILE", &credentials);
        server.process.env("LIGHTNINGSTOR_VOLUMES_NBD_LISTEN", format!("127.0.0.1:{}", free_port()));
        server.process.env("LIGHTNINGSTOR_VOLUMES_ISCSI_LISTEN", format!("127.0.0.1:{}", free_port()));
        for (k, v) in env {
            server.process.env(k, v);
        }
        (server, listen)
    }

    /// Runs `tests/clients/<script>` with python3 and `env` plus S3_ENDPOINT, S3_CA and the
    /// tenant's TENANT_ID/TENANT_SECRET: (success, stdout, stderr).
    pub async fn python(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR for tests");
        let path = std::path::Path::new(&manifest).join("tests/clients").join(script);
        let mut all: Vec<(String, String)> = vec![
            ("S3_ENDPOINT".into(), self.endpoint.clone()),
            ("S3_CA".into(), self.ca.to_string_lossy().into_owned()),
            ("TENANT_ID".into(), self.tenant.0.clone()),
            ("TENANT_SECRET".into(), self.tenant.1.clone()),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut argv = vec![path.to_string_lossy().into_owned()];
        argv.extend(args.iter().map(|a| a.to_string()));
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            run("python3", &argv, &env)
        })
        .await
        .expect("the script's thread")
    }

    /// `n` more lightningstor-servers that replicate to each other (ids `n1`..), with `env`.
    pub async fn start_nodes(&self, n: usize, env: &[(&str, &str)]) -> Vec<Node> {
        let replication: Vec<String> = (0..n).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let id = format!("n{}", i + 1);
            let peers: Vec<String> =
                (0..n).filter(|j| *j != i).map(|j| format!("\"n{}=https://{}\"", j + 1, replication[j])).collect();
            let peers = format!("[{}]", peers.join(","));
            let nbd = format!("127.0.0.1:{}", free_port());
            let mut own = vec![
                ("LIGHTNINGSTOR_REPLICATION_NODE_ID", id.as_str()),
                ("LIGHTNINGSTOR_REPLICATION_LISTEN", replication[i].as_str()),
                ("LIGHTNINGSTOR_REPLICATION_PEERS", peers.as_str()),
                ("LIGHTNINGSTOR_VOLUMES_NBD_LISTEN", nbd.as_str()),
            ];
            own.extend_from_slice(env);
            let (mut server, listen) = self.server(&own);
            server.process.start();
            nodes.push(Node { id, server, endpoint: format!("https://{listen}"), nbd });
        }
        for node in &mut nodes {
            node.server.wait_healthy(Duration::from_secs(30)).await;
        }
        nodes
    }
}

/// Service account `org/web/name` with `role` on project `org/web`; its access key.
async fn account(env: &Env, root: &str, org: &str, name: &str, role: &str) -> Key {
    env.member_key(root, org, name, role).await
}

/// Test data: `len` bytes that differ from offset to offset.
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| ((i.wrapping_mul(7).wrapping_add(seed)) % 251) as u8 ^ (i >> 16) as u8).collect()
}

/// Runs `program args` with `env`: (success, stdout, stderr).
pub fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let (ok, out, err) = run_raw(program, args, env);
    (ok, String::from_utf8_lossy(&out).into_owned(), err)
}

/// Like `run`, with stdout as bytes (binary downloads).
pub fn run_raw(program: &str, args: &[&str], env: &[(&str, &str)]) -> (bool, Vec<u8>, String) {
    let mut command = Command::new(program);
    // Clients get the platform CA explicitly; a machine-wide bundle must not override it.
    command.args(args).env_remove("AWS_CA_BUNDLE");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap_or_else(|e| panic!("{program} runs: {e}"));
    (out.status.success(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every chunk file (temporaries included) under a server's data directory, relative to it,
/// sorted.
pub fn chunk_files(server: &TestServer) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                walk(&entry.path(), root, out);
            } else if let Ok(relative) = entry.path().strip_prefix(root) {
                out.push(relative.to_path_buf());
            }
        }
    }
    let root = server.dir().join("data/chunks");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// A number from a server's `/metrics`.
pub fn metric(server: &TestServer, name: &str) -> f64 {
    let (_, body) = server.curl("GET", "/metrics", None, &[]);
    let text = body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
}

/// A `qemu-io` session kept open (its NBD connection with it), fed commands one at a time and
/// read as it answers.
pub struct QemuIo {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    said: std::sync::mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl QemuIo {
    /// `qemu-io` with `args` (the image and its options), not yet given a command.
    pub fn open(args: &[String]) -> Self {
        use std::process::Stdio;
        let mut child = Command::new("qemu-io")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-io runs");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("a piped stdout");
        let (lines, said) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, stdin, said, reader: Some(reader) }
    }

    pub fn send(&mut self, command: &str) {
        use std::io::Write;
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "{command}");
        }
    }

    /// Waits (up to `within`) for a line containing `what`; what was said until then.
    pub fn until(&mut self, what: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        let mut seen = String::new();
        while std::time::Instant::now() < deadline {
            if let Ok(line) = self.said.recv_timeout(Duration::from_millis(100)) {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(what) {
                    return seen;
                }
            }
        }
        panic!("qemu-io never said {what:?}: {seen}");
    }

    /// Quits (or kills, with `kill`) and returns everything still unread, stderr included.
    pub fn finish(mut self, kill: bool) -> String {
        if kill {
            let _ = self.child.kill();
        } else {
            self.send("quit");
        }
        self.stdin = None;
        let out = self.child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.said.try_iter().collect::<Vec<_>>().join("\n") + &out
    }
}
