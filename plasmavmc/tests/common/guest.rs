//! The test guest (tests/guest/build.sh: Debian's cloud kernel and a busybox initramfs), built
//! once into a cache shared by every test, and served by a real HTTP server (Python's
//! http.server) for images to name by URL with their SHA-256.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Guest {
    pub dir: PathBuf,
    /// Where the server listens.
    pub host: String,
    pub port: u16,
    server: Child,
}

fn sha256(path: &std::path::Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap_or_else(|e| panic!("sha256sum: {e}"));
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

impl Guest {
    /// Builds the guest unless the cache has it, and serves it on a free port of loopback.
    pub fn serve() -> Self {
        Self::serve_at(None, "127.0.0.1")
    }

    /// `serve`, inside network namespace `ns` (a test host) on its address `host`, for nodes
    /// in other namespaces to fetch from.
    pub fn serve_at(ns: Option<&str>, host: &str) -> Self {
        Self::build_and_serve("build.sh", "/var/tmp/photoncloud-guest", ns, host)
    }

    /// The cloud-init test's Debian guest (tests/guest/build-debian.sh), built unless the cache
    /// has it, served on loopback.
    pub fn serve_debian() -> Self {
        Self::build_and_serve("build-debian.sh", "/var/tmp/photoncloud-debian", None, "127.0.0.1")
    }

    fn build_and_serve(script: &str, cache: &str, ns: Option<&str>, host: &str) -> Self {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("guest");
        let dir = PathBuf::from(cache);
        let status = Command::new("bash").arg(here.join(script)).arg(&dir).status();
        assert!(status.is_ok_and(|s| s.success()), "building a test guest (tests/guest/{script}) failed");
        let port = photon_testkit::free_port();
        let mut command = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "python3"]);
                c
            }
            None => Command::new("python3"),
        };
        let server = command
            .args(["-m", "http.server", "--bind", host, &port.to_string(), "--directory"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 -m http.server: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let listening = || {
            let probe = format!("exec 3<>/dev/tcp/{host}/{port}");
            let mut c = match ns {
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns, "bash", "-c", &probe]);
                    c
                }
                None => {
                    let mut c = Command::new("bash");
                    c.args(["-c", &probe]);
                    c
                }
            };
            c.stderr(Stdio::null()).status().is_ok_and(|s| s.success())
        };
        while !listening() {
            assert!(Instant::now() < deadline, "the guest's HTTP server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { dir, host: host.to_string(), port, server }
    }

    /// Stops serving (a source that went away: a presigned URL past its expiry).
    pub fn stop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }

    /// `file`'s SHA-256 in hex.
    pub fn sha256(&self, file: &str) -> String {
        sha256(&self.dir.join(file))
    }

    pub fn url(&self, file: &str) -> String {
        format!("http://{}:{}/{file}", self.host, self.port)
    }

    /// The create body of image `name`: the kernel and initramfs by URL and SHA-256.
    pub fn image_body(&self, name: &str) -> String {
        let (kernel, initrd) = (sha256(&self.dir.join("vmlinuz")), sha256(&self.dir.join("initrd.img")));
        format!(
            r#"{{"name":"{name}","spec":{{"kernel":{{"url":"{}","sha256":"{kernel}"}},"initrd":{{"url":"{}","sha256":"{initrd}"}},"cmdline":"console=ttyS0 quiet panic=-1"}}}}"#,
            self.url("vmlinuz"),
            self.url("initrd.img")
        )
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
