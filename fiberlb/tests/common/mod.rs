//! What FiberLB's tests stand on: real chainfire, flaredb and IAM processes (IAM's test
//! environment), a fiberlb-server on free ports, and two tenants with their tokens.

#![allow(dead_code)] // Each test binary uses a different part.

#[path = "../../../iam/tests/common/mod.rs"]
pub mod iam_env;

use std::time::Duration;

use iam_env::Env;
use photon_testkit::TestServer;

pub struct Stack {
    pub env: Env,
    pub root: String,
    pub lb: TestServer,
    /// A member of project acme/web.
    pub tenant: String,
    /// A member of project beta/web.
    pub stranger: String,
}

impl Stack {
    pub async fn start() -> Self {
        let env = Env::start(&[]).await;
        let root = env.admin_token().await;
        env.org(&root, "acme", &["web"]).await;
        env.org(&root, "beta", &["web"]).await;
        let tenant = env.member_token(&root, "acme", "lb", "member").await;
        let stranger = env.member_token(&root, "beta", "lb", "member").await;
        let (chainfire, iam) = (env.chainfire.url(), env.iam.url());
        let mut lb = TestServer::with_shared_ca("fiberlb-server", env.ca.path(), &["--chainfire", &chainfire, "--iam", &iam]);
        lb.process.start();
        lb.wait_healthy(Duration::from_secs(30)).await;
        Self { env, root, lb, tenant, stranger }
    }

    /// The API under `/api/v1/orgs/acme/projects/web` (or the full path if it starts with
    /// `/api/`) as `token`: (status, JSON body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>, token: &str) -> (u16, serde_json::Value) {
        self.lb.project_call(("acme", "web"), method, path, body, token)
    }

    /// `api` as the tenant, asserting `status`.
    pub fn expect(&self, status: u16, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
        let (got, json) = self.api(method, path, body, &self.tenant);
        assert_eq!(got, status, "{method} {path}: {json}");
        json
    }
}

/// A backend the test starts: answers an HTTP request with its name (and closes; `/healthz`
/// with 200 or 503 as `healthy` says, `/headers` with its name and the request's headers; an
/// upgrade to `websocket` on `/ws` with 101, then echoes lines), echoes other lines prefixed with its name (keeping the
/// connection open), and records the first line of each connection.
pub struct Backend {
    pub port: u16,
    pub task: tokio::task::JoinHandle<()>,
    pub first_lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

pub async fn backend(name: &'static str) -> Backend {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a backend");
    let port = listener.local_addr().expect("its address").port();
    let (tx, first_lines) = tokio::sync::mpsc::unbounded_channel();
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let health = healthy.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (tx, health) = (tx.clone(), health.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut first = true;
                while let Ok(Some(line)) = lines.next_line().await {
                    if first {
                        let _ = tx.send(line.clone());
                        first = false;
                    }
                    if line.starts_with("GET ") || line.starts_with("POST ") {
                        let mut headers = String::new();
                        while let Ok(Some(header)) = lines.next_line().await {
                            if header.is_empty() {
                                break;
                            }
                            headers.push_str(&header.to_ascii_lowercase());
                            headers.push('\n');
                        }
                        if line.starts_with("GET /ws ") && headers.contains("upgrade: websocket") {
                            let switch = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
                            if write.write_all(switch.as_bytes()).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        let (status, body) = if line.starts_with("GET /healthz ") {
                            if health.load(Ordering::SeqCst) { ("200 OK", "ok".to_string()) } else { ("503 Service Unavailable", "down".to_string()) }
                        } else if line.starts_with("GET /headers ") {
                            ("200 OK", format!("{name}\n{headers}"))
                        } else {
                            ("200 OK", name.to_string())
                        };
                        let response =
                            format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                        let _ = write.write_all(response.as_bytes()).await;
                        return;
                    }
                    if !line.starts_with("PROXY ") && write.write_all(format!("{name}:{line}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Backend { port, task, first_lines, healthy }
}

/// curl through a listener on `port`: the backend's name, or None if the connection failed.
pub fn through(port: u16) -> Option<String> {
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "3", &format!("http://127.0.0.1:{port}/")])
        .output()
        .expect("curl runs");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until `check` holds, failing after `within`; how long it took.
pub async fn wait_for(what: &str, within: Duration, check: impl Fn() -> bool) -> Duration {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// A keep-alive HTTP/1.1 backend (hyper) answering every request with its name; `stop` closes
/// its listener and every connection, as a process that dies would.
pub struct HttpBackend {
    pub port: u16,
    pub stop: tokio_util::sync::CancellationToken,
}

pub async fn http_backend(name: &'static str) -> HttpBackend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a backend");
    let port = listener.local_addr().expect("its address").port();
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = stopped.cancelled() => return,
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
            };
            let stopped = stopped.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(hyper::body::Bytes::from(name))))
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::select! {
                    _ = stopped.cancelled() => {}
                    _ = connection => {}
                }
            });
        }
    });
    HttpBackend { port, stop }
}

/// What one wrk run reports.
#[derive(Debug, Default)]
pub struct WrkRun {
    pub requests: u64,
    pub non_2xx: u64,
    pub socket_errors: u64,
    pub text: String,
}

/// wrk (Debian's) against `url` for `seconds`, 2 threads and 16 connections, keep-alive.
pub fn wrk(url: &str, seconds: u64) -> WrkRun {
    let out = std::process::Command::new("wrk")
        .args(["-t2", "-c16", &format!("-d{seconds}s"), "--timeout", "5s", url])
        .output()
        .expect("wrk runs (scripts/setup installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let number = |line: &str| line.split_whitespace().find_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).unwrap_or(0);
    let mut run = WrkRun { text: text.clone(), ..WrkRun::default() };
    for line in text.lines() {
        let line = line.trim();
        if line.contains("requests in") {
            run.requests = number(line);
        } else if line.starts_with("Non-2xx or 3xx responses:") {
            run.non_2xx = number(line);
        } else if line.starts_with("Socket errors:") {
            run.socket_errors = line
                .split(',')
                .filter_map(|part| part.split_whitespace().last().and_then(|n| n.parse::<u64>().ok()))
                .sum();
        }
    }
    run
}
