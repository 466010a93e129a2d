//! The NBD tests' harness: the server started in-process on a free port over `MemDevice`
//! exports, the real clients (qemu-io, qemu-img, nbdinfo, nbdcopy) run as subprocesses, a test
//! CA for TLS, and a raw protocol client (`raw`) for what no real client would send.

pub mod corpus;
pub mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use photon_block::nbd::{serve, StaticExports};
use photon_block::{BlockDevice, MemDevice};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Panics anywhere in the process (server tasks included), counted by a hook.
static PANICS: AtomicUsize = AtomicUsize::new(0);

pub fn panics() -> usize {
    PANICS.load(Ordering::SeqCst)
}

/// Installs logging and the panic-counting hook, once per test binary.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("photon_block=debug")),
            )
            .with_test_writer()
            .try_init();
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// A running server and the devices it exports.
pub struct Server {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Server {
    pub async fn start(exports: StaticExports, tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, Arc::new(exports), tls, shutdown.clone()));
        Server { addr, shutdown, task }
    }

    /// An `nbd://` URI for `export`.
    pub fn uri(&self, export: &str) -> String {
        format!("nbd://127.0.0.1:{}/{export}", self.addr.port())
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve does not panic");
    }
}

/// Exports `(name, device)` pairs.
pub fn exports(devices: &[(&str, &Arc<MemDevice>)]) -> StaticExports {
    devices.iter().fold(StaticExports::new(), |e, (name, dev)| e.with(*name, (*dev).clone() as Arc<dyn BlockDevice>))
}

/// The device's whole content.
pub async fn content(dev: &MemDevice) -> Vec<u8> {
    let mut out = Vec::with_capacity(dev.size() as usize);
    let mut at = 0;
    while at < dev.size() {
        let n = (dev.size() - at).min(1 << 20) as u32;
        out.extend_from_slice(&dev.read(at, n).await.unwrap());
        at += u64::from(n);
    }
    out
}

/// Fills `dev` with `byte` over `[offset, offset + len)`.
pub async fn fill(dev: &MemDevice, offset: u64, len: usize, byte: u8) {
    dev.write(offset, vec![byte; len].into(), false).await.unwrap();
}

/// Seeded pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = photon_testkit::seeded::Rng(seed | 1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs a client to completion (killed after a minute), printing its output for failures.
pub async fn run(program: &str, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).kill_on_drop(true).stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} timed out"))
        .unwrap_or_else(|e| panic!("{program} could not start ({e}); run scripts/setup"));
    eprintln!(
        "$ {program} {}\n-- status {:?}\n-- stdout\n{}-- stderr\n{}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a client that must succeed; returns its stdout.
pub async fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args).await;
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A test CA and a server certificate for localhost and 127.0.0.1, with a client directory in
/// the layout libnbd and QEMU read (`ca-cert.pem`).
pub struct TestPki {
    pub _dir: tempfile::TempDir,
    pub client_dir: PathBuf,
    pub server: Arc<rustls::ServerConfig>,
}

impl TestPki {
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = photon_tls::DevCa::load_or_create(&dir.path().join("ca")).unwrap();
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let issued = ca.issue(&dir.path().join("server"), "server", &names).unwrap();
        let identity = photon_tls::load_identity(&issued.cert_path, &issued.key_path).unwrap();
        let mut config = photon_tls::server_config(identity, None).unwrap();
        // NBD clients offer no ALPN; the HTTP protocols photon-tls sets would mean nothing.
        config.alpn_protocols.clear();
        let client_dir = dir.path().join("client");
        std::fs::create_dir_all(&client_dir).unwrap();
        std::fs::copy(ca.cert_path(), client_dir.join("ca-cert.pem")).unwrap();
        TestPki { _dir: dir, client_dir, server: Arc::new(config) }
    }

    pub fn client_dir(&self) -> &Path {
        &self.client_dir
    }
}

/// Sends `bytes` as a whole client session (malformed or random: the robustness tests of both
/// protocols) and reads until the server closes; whether it did within 15 s.
pub async fn send_session(addr: std::net::SocketAddr, bytes: &[u8]) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let bytes = bytes.to_vec();
    // Written concurrently with reading: the server may answer before it has read everything,
    // or hang up early (then the write fails, which is fine).
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        let _ = wr.shutdown().await;
        wr
    });
    let mut sink = vec![0u8; 64 * 1024];
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(n) = rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await
    .is_ok();
    let _ = writer.await;
    closed
}
