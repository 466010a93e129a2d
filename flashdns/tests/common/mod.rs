//! What FlashDNS's tests stand on: real chainfire, flaredb and IAM processes (IAM's test
//! environment), a flashdns-server on free ports, two tenants with their tokens, and the real
//! DNS clients `dig` and `kdig`.

#![allow(dead_code)] // Each test binary uses a different part.

#[path = "../../../iam/tests/common/mod.rs"]
pub mod iam_env;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use iam_env::Env;
use photon_testkit::{free_port, TestServer};

pub struct Stack {
    pub env: Env,
    pub root: String,
    pub dns: TestServer,
    /// DNS over UDP and TCP.
    pub dns_addr: SocketAddr,
    /// A member of project acme/web.
    pub tenant: String,
    /// A member of project beta/web.
    pub stranger: String,
}

impl Stack {
    /// The chain, two tenants, and flashdns-server with `env` (its `FLASHDNS_*`).
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let iam = Env::start(&[]).await;
        let root = iam.admin_token().await;
        iam.org(&root, "acme", &["web"]).await;
        iam.org(&root, "beta", &["web"]).await;
        let tenant = iam.member_token(&root, "acme", "dns", "member").await;
        let stranger = iam.member_token(&root, "beta", "dns", "member").await;
        let dns_addr: SocketAddr = format!("127.0.0.1:{}", free_udp_tcp_port()).parse().expect("an address");
        let mut dns = server(&iam, dns_addr, env);
        dns.process.start();
        dns.wait_healthy(Duration::from_secs(30)).await;
        Self { env: iam, root, dns, dns_addr, tenant, stranger }
    }

    /// The API under `/api/v1/orgs/acme/projects/web` (or the full path if it starts with
    /// `/api/`) as `token`: (status, JSON body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>, token: &str) -> (u16, serde_json::Value) {
        let path = if path.starts_with("/api/") { path.to_string() } else { format!("/api/v1/orgs/acme/projects/web{path}") };
        let auth = format!("authorization: Bearer {token}");
        self.dns.curl(method, &path, body, &[&auth])
    }

    /// Creates `zone` for acme/web and loads `file` (a master file) into it.
    pub fn load_zone(&self, zone: &str, file: &std::path::Path) {
        let (status, body) = self.api("POST", "/zones", Some(&format!("{{\"name\":\"{zone}\"}}")), &self.tenant);
        assert_eq!(status, 201, "create {zone}: {body}");
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST", "--cacert"])
            .arg(self.dns.ca())
            .args(["-H", &format!("authorization: Bearer {}", self.tenant), "-H", "content-type: text/dns"])
            .arg("--data-binary")
            .arg(format!("@{}", file.display()))
            .arg(format!("{}/api/v1/orgs/acme/projects/web/zones/{zone}/import", self.dns.url()))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.trim_end().ends_with("200"), "import {zone} from {}: {text}", file.display());
    }

    /// Waits until this server answers `name` `rtype` with a non-REFUSED rcode over UDP.
    pub async fn wait_served(&self, name: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out = dig(self.dns_addr, &[name, "SOA", "+norecurse"]);
            if !out.contains("status: REFUSED") && out.contains("status:") {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{name} not served within 10 s: {out}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// DNS over TLS on the API port.
    pub fn dot_port(&self) -> u16 {
        self.dns.url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("the API URL has a port")
    }
}

/// A flashdns-server (not started) on `iam`'s chainfire and IAM, DNS at `dns_addr`.
pub fn server(iam: &Env, dns_addr: SocketAddr, env: &[(&str, &str)]) -> TestServer {
    let (chainfire, iam_url) = (iam.chainfire.url(), iam.iam.url());
    let listen = dns_addr.to_string();
    let mut server = TestServer::with_shared_ca(
        "flashdns-server",
        iam.ca.path(),
        &["--chainfire", &chainfire, "--iam", &iam_url, "--dns-listen", &listen],
    );
    for (k, v) in env {
        server.process.env(k, v);
    }
    server
}

/// A port free for both UDP and TCP on loopback.
pub fn free_udp_tcp_port() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `dig @addr -p port args`: its whole output.
pub fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig runs (scripts/setup installs bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `kdig @addr -p port args`: its whole output.
pub fn kdig(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("kdig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=2", "+retry=0"])
        .args(args)
        .output()
        .expect("kdig runs (scripts/setup installs knot-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The lines of dig's ANSWER (or another) section, whitespace collapsed.
pub fn section(out: &str, name: &str) -> Vec<String> {
    let header = format!(";; {name} SECTION:");
    out.lines()
        .skip_while(|l| !l.starts_with(&header))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The rcode, as dig (`status: NOERROR,`) and kdig (`status: NOERROR;`) print it.
pub fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .map(|s| s.trim_start_matches(|c: char| !c.is_ascii_alphabetic()))
        .and_then(|s| s.split([',', ';']).next())
        .unwrap_or("(no status)")
}

/// The header flags, as dig (`flags:`) and kdig (`Flags:`) print them.
pub fn flags(out: &str) -> String {
    out.split("lags: ").nth(1).and_then(|s| s.split(';').next()).unwrap_or("").to_string()
}

/// The ANSWER section's lines.
pub fn answer(out: &str) -> Vec<String> {
    section(out, "ANSWER")
}
