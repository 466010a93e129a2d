//! What PlasmaVMC's tests stand on: real chainfire, flaredb and IAM processes (IAM's test
//! environment), plasmavmc-server nodes with the agent on (real QEMU, software emulation), two
//! tenants, and the test guest served over HTTP.

#![allow(dead_code)] // Each test binary uses a different part.

#[path = "../../../iam/tests/common/mod.rs"]
pub mod iam_env;

pub mod guest;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use iam_env::Env;
use photon_testkit::TestServer;

pub use guest::Guest;

pub struct Stack {
    pub env: Env,
    pub root: String,
    /// plasmavmc-server nodes `node-0`, `node-1`, ...
    pub nodes: Vec<TestServer>,
    /// A member of project acme/web.
    pub tenant: String,
    /// A member of project beta/web.
    pub stranger: String,
    pub guest: Guest,
    /// lightningstor-server, when the stack has volumes (`start_with_storage`).
    pub storage: Option<TestServer>,
    /// Its S3 endpoint (`https://...`), where images are imported.
    pub s3: Option<String>,
}

/// Each node offers 2 CPUs (no overcommit) and 1 GiB.
pub fn node_server(env: &Env, index: usize, extra: &[(&str, String)]) -> TestServer {
    let (chainfire, iam) = (env.chainfire.url(), env.iam.url());
    let mut server =
        TestServer::with_shared_ca("plasmavmc-server", env.ca.path(), &["--chainfire", &chainfire, "--iam", &iam]);
    for (k, v) in [
        ("PLASMAVMC_AGENT_NODE", format!("node-{index}")),
        ("PLASMAVMC_AGENT_ACCEL", "tcg".to_string()),
        ("PLASMAVMC_AGENT_VCPUS", "2".to_string()),
        ("PLASMAVMC_AGENT_MEMORY_MIB", "1024".to_string()),
        ("PLASMAVMC_AGENT_STOP_TIMEOUT_MS", "3000".to_string()),
        ("PLASMAVMC_AGENT_RESYNC_MS", "1000".to_string()),
        ("PLASMAVMC_SCHEDULER_CPU_OVERCOMMIT", "1.0".to_string()),
    ] {
        server.process.env(k, v);
    }
    for (k, v) in extra {
        server.process.env(k, v);
    }
    server
}

impl Stack {
    pub async fn start(nodes: usize) -> Self {
        Self::start_with(nodes, &[]).await
    }

    pub async fn start_with(count: usize, extra: &[(&str, String)]) -> Self {
        Self::assemble(count, extra, false).await
    }

    /// `start`, plus a lightningstor-server whose volumes the VMs use (as PlasmaVMC's service
    /// account, which IAM's bootstrap provisions).
    pub async fn start_with_storage(count: usize) -> Self {
        Self::assemble(count, &[], true).await
    }

    async fn assemble(count: usize, extra: &[(&str, String)], volumes: bool) -> Self {
        let guest = Guest::serve();
        let services: &[(&str, &str)] = if volumes { &[("IAM_BOOTSTRAP_SERVICES", r#"["lightningstor", "plasmavmc"]"#)] } else { &[] };
        let env = Env::start(services).await;
        let root = env.admin_token().await;
        env.org(&root, "acme", &["web"]).await;
        env.org(&root, "beta", &["web"]).await;
        let tenant = env.member_token(&root, "acme", "vm", "member").await;
        let stranger = env.member_token(&root, "beta", "vm", "member").await;
        let mut extra = extra.to_vec();
        let mut s3_url = None;
        let storage = if volumes {
            let services = env.iam.dir().join("data/services");
            let (flaredb, iam, chainfire) = (env.flaredb.url(), env.iam.url(), env.chainfire.url());
            let s3 = format!("127.0.0.1:{}", photon_testkit::free_port());
            let mut storage = TestServer::with_shared_ca(
                "lightningstor-server",
                env.ca.path(),
                &["--flaredb", &flaredb, "--chainfire", &chainfire, "--iam", &iam, "--s3-listen", &s3],
            );
            storage.process.env("LIGHTNINGSTOR_IAM_CREDENTIALS_FILE", services.join("lightningstor.json"));
            let nbd = format!("127.0.0.1:{}", photon_testkit::free_port());
            storage.process.env("LIGHTNINGSTOR_VOLUMES_NBD_LISTEN", &nbd);
            storage.process.env("LIGHTNINGSTOR_VOLUMES_ISCSI_LISTEN", format!("127.0.0.1:{}", photon_testkit::free_port()));
            storage.process.start();
            storage.wait_healthy(Duration::from_secs(30)).await;
            extra.push(("PLASMAVMC_IAM_CREDENTIALS_FILE", services.join("plasmavmc.json").display().to_string()));
            extra.push(("PLASMAVMC_LIGHTNINGSTOR_URL", storage.url()));
            extra.push(("PLASMAVMC_LIGHTNINGSTOR_NBD", nbd));
            extra.push(("PLASMAVMC_LIGHTNINGSTOR_S3", format!("https://{s3}")));
            s3_url = Some(format!("https://{s3}"));
            Some(storage)
        } else {
            None
        };
        let mut nodes = Vec::new();
        for index in 0..count {
            let mut node = node_server(&env, index, &extra);
            node.process.start();
            nodes.push(node);
        }
        for node in &mut nodes {
            node.wait_healthy(Duration::from_secs(30)).await;
        }
        let stack = Self { env, root, nodes, tenant, stranger, guest, storage, s3: s3_url };
        stack.wait_for("every node registered", Duration::from_secs(20), |s| {
            s.health(0)["nodes"]["schedulable"].as_u64() == Some(count as u64)
        });
        stack
    }

    /// LightningStor's API under the tenant's project, asserting `status`.
    pub fn volumes(&self, status: u16, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
        let storage = self.storage.as_ref().expect("a stack with storage");
        let (got, json) = storage.project_call(("acme", "web"), method, path, body, &self.tenant);
        assert_eq!(got, status, "{method} {path}: {json}");
        json
    }

    pub fn health(&self, node: usize) -> serde_json::Value {
        self.nodes[node].curl("GET", "/health", None, &[]).1
    }

    /// The API under `/api/v1/orgs/acme/projects/web` (or the full path) as `token`, through
    /// the first node still running (a test may kill nodes).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>, token: &str) -> (u16, serde_json::Value) {
        let node = self.nodes.iter().find(|n| n.process.pid().is_some()).unwrap_or(&self.nodes[0]);
        node.project_call(("acme", "web"), method, path, body, token)
    }

    /// `api` as the tenant, asserting `status`.
    pub fn expect(&self, status: u16, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
        let (got, json) = self.api(method, path, body, &self.tenant);
        assert_eq!(got, status, "{method} {path}: {json}");
        json
    }

    /// `api` as the tenant expecting 400 naming `field`; the message.
    pub fn refused(&self, method: &str, path: &str, body: &str, field: &str) -> String {
        let (got, json) = self.api(method, path, Some(body), &self.tenant);
        assert_eq!(got, 400, "{method} {path} {body}: {json}");
        let message = json["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(field), "{body}: the error names {field}: {json}");
        message
    }

    /// The tenant's flavour `name` and the test guest as image `guest`.
    pub fn flavor_and_image(&self, flavor: &str, vcpus: u32, memory_mib: u64) {
        let body =
            format!(r#"{{"name":"{flavor}","spec":{{"vcpus":{vcpus},"memory_mib":{memory_mib},"disk_gib":1}}}}"#);
        self.expect(201, "POST", "/flavors", Some(&body));
        self.expect(201, "POST", "/images", Some(&self.guest.image_body("guest")));
    }

    pub fn vm(&self, name: &str) -> serde_json::Value {
        self.expect(200, "GET", &format!("/vms/{name}"), None)
    }

    /// Waits until VM `name` is in `state`; its JSON.
    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let vm = self.vm(name);
            if vm["status"]["state"] == state {
                return vm;
            }
            assert!(
                Instant::now() < deadline,
                "VM {name} not {state} within {timeout:?}: {vm}\n{}",
                self.nodes[0].process.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until VM `name` is in `state` on `node`; its JSON.
    pub fn wait_state_on(&self, name: &str, node: &str, state: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let vm = self.vm(name);
            if vm["status"]["state"] == state && vm["status"]["node"] == node {
                return vm;
            }
            assert!(Instant::now() < deadline, "VM {name} not {state} on {node} within {timeout:?}: {vm}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(Instant::now() < deadline, "{what}: not within {timeout:?}\n{}", self.nodes[0].process.logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The run directory of VM `uid` on node `node`.
    pub fn run_dir(&self, node: usize, uid: &str) -> PathBuf {
        self.nodes[node].dir().join("data").join("vms").join(uid)
    }

    /// VM `uid`'s serial console so far, on node `node`.
    pub fn console(&self, node: usize, uid: &str) -> String {
        std::fs::read_to_string(self.run_dir(node, uid).join("console.log")).unwrap_or_default()
    }

    /// Waits until the console of VM `uid` on `node` holds `text` `times` times.
    pub fn wait_console(&self, node: usize, uid: &str, text: &str, times: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.console(node, uid).matches(text).count() < times {
            assert!(
                Instant::now() < deadline,
                "console of {uid}: {text:?} ×{times} not within {timeout:?}:\n{}",
                self.console(node, uid)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Guests outlive their agent by design (QEMU in a session of its own), so a test's guests are
/// ended with its stack, passed or failed: every QEMU whose command line names a node's
/// directory.
impl Drop for Stack {
    fn drop(&mut self) {
        for node in &self.nodes {
            for pid in qemu_processes(&node.dir().display().to_string()) {
                // SAFETY: a plain signal to a QEMU this test's node started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// The QEMU processes whose command line names `needle`.
pub fn qemu_processes(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.starts_with("qemu-system") && cmdline.contains(needle) {
            found.push(pid);
        }
    }
    found
}
