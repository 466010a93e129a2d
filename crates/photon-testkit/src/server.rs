//! A PhotonCloud server binary under test: its own port, data dir and development CA.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use photon_client::{probe_health, ClientError, HealthAnswer};
use tempfile::TempDir;

use crate::{binary, free_port, Process};

pub struct TestServer {
    pub process: Process,
    pub port: u16,
    dir: TempDir,
    ca_dir: PathBuf,
}

impl TestServer {
    /// Prepares (does not start) `binary_name` with `--listen 127.0.0.1:<free port>`, a
    /// temporary `--data-dir` and `--dev-ca-dir`, then `extra_args`.
    pub fn new(binary_name: &str, extra_args: &[&str]) -> Self {
        Self::prepare(binary_name, None, extra_args)
    }

    /// Like [`TestServer::new`], but with the development CA in `ca_dir`, shared with other
    /// servers (members of one cluster must trust each other).
    pub fn with_shared_ca(binary_name: &str, ca_dir: &Path, extra_args: &[&str]) -> Self {
        Self::prepare(binary_name, Some(ca_dir.to_path_buf()), extra_args)
    }

    fn prepare(binary_name: &str, shared_ca: Option<PathBuf>, extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        enterable(dir.path());
        let ca_dir = shared_ca.clone().unwrap_or_else(|| dir.path().join("ca"));
        let port = free_port();
        let mut process = Process::new(binary_name, &binary(binary_name), &dir.path().join("server.log"));
        process
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--dev-ca-dir")
            .arg(&ca_dir)
            .arg("--log-level")
            .arg("debug");
        for arg in extra_args {
            process.arg(arg);
        }
        Self { process, port, dir, ca_dir }
    }

    /// Prepares and starts the server.
    pub fn start(binary_name: &str, extra_args: &[&str]) -> Self {
        let mut server = Self::new(binary_name, extra_args);
        server.process.start();
        server
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The development CA certificate clients should trust.
    pub fn ca(&self) -> PathBuf {
        self.ca_dir.join(photon_tls::CA_CERT_FILE)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn health(&self) -> Result<HealthAnswer, ClientError> {
        probe_health(&self.url(), Some(&self.ca()), Duration::from_secs(2)).await
    }

    /// curl against this server (trusting its CA): the HTTP status and the body as JSON (a JSON
    /// string when it is not JSON). `headers` are `Name: value` lines.
    pub fn curl(&self, method: &str, path: &str, body: Option<&str>, headers: &[&str]) -> (u16, serde_json::Value) {
        let mut command = std::process::Command::new("curl");
        command.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "--cacert"]).arg(self.ca());
        for header in headers {
            command.args(["-H", header]);
        }
        // The body goes through stdin: it may be larger than an argument may be. A large one
        // goes over HTTP/1.1, where curl asks `Expect: 100-continue` and a refusal (413) arrives
        // before the upload; over HTTP/2 it would arrive mid-upload as a reset stream.
        if let Some(body) = body {
            command.args(["-H", "content-type: application/json", "--data-binary", "@-"]);
            if body.len() > 64 << 10 {
                command.arg("--http1.1");
            }
        }
        command.arg(format!("{}{path}", self.url()));
        let out = crate::binary::output_with_stdin(&mut command, body.unwrap_or_default());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let json = serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_string()));
        (code.trim().parse().unwrap_or(0), json)
    }

    /// A tenant resource API call (photon-resource's REST shape) as `token`: `path` under
    /// `/api/v1/orgs/{org}/projects/{project}` of `project`, or as it is when it starts with
    /// `/api/`.
    pub fn project_call(
        &self,
        project: (&str, &str),
        method: &str,
        path: &str,
        body: Option<&str>,
        token: &str,
    ) -> (u16, serde_json::Value) {
        let path = if path.starts_with("/api/") {
            path.to_string()
        } else {
            format!("/api/v1/orgs/{}/projects/{}{path}", project.0, project.1)
        };
        self.curl(method, &path, body, &[&format!("authorization: Bearer {token}")])
    }

    /// `POST /debug/fault/{action}` (`isolate` or `heal`) on a server started with
    /// `raft.fault_injection`; panics unless it answers 2xx.
    pub fn fault(&self, action: &str) {
        let status = std::process::Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-X", "POST", "--cacert"])
            .arg(self.ca())
            .arg(format!("{}/debug/fault/{action}", self.url()))
            .status();
        assert!(status.is_ok_and(|s| s.success()), "fault {action} on {}", self.url());
    }

    /// Waits until `/health` answers 200, or panics (printing the server's log) after `timeout`.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(status) = self.process.try_wait() {
                panic!("{} exited with {status} before becoming healthy", self.url());
            }
            match self.health().await {
                Ok(answer) if answer.http_status == 200 => return answer.body,
                Ok(answer) => last = format!("HTTP {}: {}", answer.http_status, answer.body),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} not healthy after {timeout:?}; last answer: {last}", self.url());
    }
}

/// Lets other users enter `dir` (not list it), as a system's /var/lib does: a service may run
/// helpers as users of their own (PlasmaVMC's QEMUs) that open files below it.
pub(crate) fn enterable(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
}
