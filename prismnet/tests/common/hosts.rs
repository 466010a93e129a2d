//! PrismNET across test hosts: a cluster of network namespaces (photon-testkit's harness), a
//! prismnet-server with its dataplane on every node, a tenant's token, and "machines": network
//! namespaces of the test's own that ports plug into, to ping and talk TCP from.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use photon_testkit::cluster::Cluster;
use serde_json::Value;

pub struct Hosts {
    pub cluster: Cluster,
    pub token: String,
}

impl Hosts {
    /// One control-plane node and `workers` workers, prismnet on every one; projects acme/web
    /// and beta/web.
    pub fn start(workers: usize) -> Self {
        Self::start_with(workers, false)
    }

    /// `start`, and with `names`, FlashDNS on node 0 (so ports are named there).
    pub fn start_with(workers: usize, names: bool) -> Self {
        let mut cluster = Cluster::new(1);
        let workers: Vec<usize> = (0..workers).map(|_| cluster.add_node(false, false, None)).collect();
        cluster.start(0);
        cluster.wait_healthy(0, Duration::from_secs(60));
        cluster.start_nodes(&workers);
        for &i in &workers {
            cluster.wait_healthy(i, Duration::from_secs(60));
        }
        let token = cluster.admin_token();
        cluster.org_with_project(&token, "acme", "web");
        cluster.org_with_project(&token, "beta", "web");
        if names {
            cluster.add_service(0, "flashdns");
            cluster.start_service(0, "flashdns");
        }
        for i in 0..cluster.nodes.len() {
            cluster.add_service(i, "prismnet");
            cluster.start_service(i, "prismnet");
        }
        Self { cluster, token }
    }

    /// The REST API of node 0's prismnet under `/api/v1/orgs/{org}/projects/web`.
    pub fn api(&self, org: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let url = format!("https://127.0.0.1:9091/api/v1/orgs/{org}/projects/web{path}");
        let bearer = format!("authorization: Bearer {}", self.token);
        let mut args = vec!["-X", method, "-H", &bearer, "-H", "content-type: application/json"];
        if let Some(body) = body {
            args.extend(["--data-binary", body]);
        }
        args.push(&url);
        self.cluster.curl_with(0, &args)
    }

    pub fn expect(&self, org: &str, status: u16, method: &str, path: &str, body: Option<&str>) -> Value {
        let (got, json) = self.api(org, method, path, body);
        assert_eq!(got, status, "{method} {org}{path}: {json}");
        json
    }

    /// A new machine: an empty namespace of the test's own (removed with the lab).
    pub fn machine(&self, label: &str) -> String {
        let ns = self.cluster.lab.extra_ns(label);
        run("ip", &["netns", "add", &ns]);
        run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A veth port for `machine` on node `node`, configured by prismnet (address, route, MTU),
    /// in the VPC's `mesh` group (its members reach each other).
    pub fn port(&self, org: &str, vpc: &str, subnet: &str, name: &str, ip: Option<&str>, node: usize, machine: &str) -> Value {
        self.port_in(org, vpc, subnet, name, ip, node, machine, &["mesh"])
    }

    /// A veth port in security groups `groups`.
    #[allow(clippy::too_many_arguments)]
    pub fn port_in(
        &self,
        org: &str,
        vpc: &str,
        subnet: &str,
        name: &str,
        ip: Option<&str>,
        node: usize,
        machine: &str,
        groups: &[&str],
    ) -> Value {
        let node = &self.cluster.nodes[node].name;
        let ip = ip.map(|ip| format!(r#""ip":"{ip}","#)).unwrap_or_default();
        let groups = serde_json::to_string(groups).unwrap_or_default();
        let body = format!(
            r#"{{"name":"{name}","spec":{{{ip}"security_groups":{groups},"binding":{{"node":"{node}","netns":"{machine}","configure":true}}}}}}"#
        );
        self.expect(org, 201, "POST", &format!("/vpcs/{vpc}/subnets/{subnet}/ports"), Some(&body))
    }

    /// A VPC with one subnet and a security group `mesh` whose members take anything from
    /// each other (as a cloud's default group does).
    pub fn network(&self, org: &str, vpc: &str, cidr: &str, subnet: &str, subnet_cidr: &str) {
        self.expect(org, 201, "POST", "/vpcs", Some(&format!(r#"{{"name":"{vpc}","spec":{{"cidr":"{cidr}"}}}}"#)));
        let body = format!(r#"{{"name":"{subnet}","spec":{{"cidr":"{subnet_cidr}"}}}}"#);
        self.expect(org, 201, "POST", &format!("/vpcs/{vpc}/subnets"), Some(&body));
        self.expect(org, 201, "POST", &format!("/vpcs/{vpc}/securitygroups"), Some(r#"{"name":"mesh","spec":{}}"#));
        let rule = r#"{"name":"members","spec":{"direction":"ingress","remote_group":"mesh"}}"#;
        self.expect(org, 201, "POST", &format!("/vpcs/{vpc}/securitygroups/mesh/rules"), Some(rule));
    }

    /// The log of every node's prismnet and what the kernel holds in every namespace of the
    /// test (for failure messages).
    pub fn logs(&self) -> String {
        let mut text: String =
            (0..self.cluster.nodes.len()).map(|i| format!("--- node {i} prismnet ---\n{}", self.cluster.log(i, "prismnet"))).collect();
        let lab = self.cluster.lab.extra_ns("");
        let prefix = lab.trim_end_matches('m');
        let namespaces = run("ip", &["netns", "list"]);
        for ns in namespaces.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| n.starts_with(prefix)) {
            text.push_str(&format!("--- namespace {ns} ---\n"));
            for (program, args) in [
                ("ip", vec!["-n", ns, "-d", "-o", "link"]),
                ("ip", vec!["-n", ns, "-o", "addr"]),
                ("ip", vec!["-n", ns, "route"]),
                ("ip", vec!["-n", ns, "neigh"]),
                ("bridge", vec!["-n", ns, "fdb"]),
                ("ip", vec!["netns", "exec", ns, "nft", "list", "ruleset"]),
            ] {
                let out = std::process::Command::new(program).args(&args).output();
                let out = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
                text.push_str(&format!("$ {program} {}\n{out}", args.join(" ")));
            }
        }
        text
    }
}

/// Runs a command; panics with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One ping from `machine` to `ip` (1 s deadline).
pub fn ping(machine: &str, ip: &str) -> bool {
    std::process::Command::new("ip")
        .args(["netns", "exec", machine, "ping", "-c", "1", "-W", "1", "-q", ip])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Waits until `machine` pings `ip`; how long it took.
pub fn wait_ping(machine: &str, ip: &str, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if ping(machine, ip) {
            return Some(started.elapsed());
        }
    }
    None
}

/// Runs `work` on a thread inside the namespace `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, work: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap_or_else(|e| panic!("namespace {ns}: {e}"));
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns(2) of this thread to an open namespace file.
        assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns: {}", std::io::Error::last_os_error());
        work()
    })
}

/// A TCP server in `machine` on `port` answering each connection with `name` and closing.
pub fn greeter(machine: &str, port: u16, name: &'static str) {
    let (ready, up) = std::sync::mpsc::channel();
    in_ns(machine, move || {
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind in the machine");
        let _ = ready.send(());
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(name.as_bytes());
        }
    });
    up.recv_timeout(Duration::from_secs(5)).expect("the greeter listens");
}

/// What the greeter at `addr` says, asked from `machine` (None: no connection in 2 s).
pub fn greeting(machine: &str, addr: SocketAddr) -> Option<String> {
    greeting_within(machine, addr, Duration::from_secs(2))
}

/// [`greeting`] giving up on the connection after `timeout`.
pub fn greeting_within(machine: &str, addr: SocketAddr, timeout: Duration) -> Option<String> {
    in_ns(machine, move || {
        let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    })
    .join()
    .ok()
    .flatten()
}

/// A TCP echo server in `machine` on `port` (one connection at a time, 8-byte messages).
pub fn echo_server(machine: &str, port: u16) {
    let (ready, up) = std::sync::mpsc::channel();
    in_ns(machine, move || {
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind in the machine");
        let _ = ready.send(());
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 8];
            while stream.read_exact(&mut buf).is_ok() && stream.write_all(&buf).is_ok() {}
        }
    });
    up.recv_timeout(Duration::from_secs(5)).expect("the echo server listens");
}

/// A stream of numbered round trips from `machine` to an echo server, every 5 ms, until
/// stopped: each reply checked.
pub struct Stream {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Result<(u64, Duration), String>>,
}

impl Stream {
    pub fn start(machine: &str, addr: SocketAddr) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let halt = stop.clone();
        let thread = in_ns(machine, move || -> Result<(u64, Duration), String> {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("connect: {e}"))?;
            stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
            let (mut n, mut worst) = (0u64, Duration::ZERO);
            while !halt.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                stream.write_all(&n.to_be_bytes()).map_err(|e| format!("write {n}: {e}"))?;
                let mut back = [0u8; 8];
                stream.read_exact(&mut back).map_err(|e| format!("reply to {n}: {e}"))?;
                if u64::from_be_bytes(back) != n {
                    return Err(format!("reply {} to {n}", u64::from_be_bytes(back)));
                }
                worst = worst.max(sent.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok((n, worst))
        });
        Self { stop, thread }
    }

    /// Stops it: (round trips, the slowest), or how it broke.
    pub fn finish(self) -> Result<(u64, Duration), String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or_else(|_| Err("the stream thread panicked".into()))
    }
}

/// Polls `check` every 20 ms until it holds: how long it took, or None after `within`.
pub fn within(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if check() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A TCP server in `ns` on `port` answering each connection with the address it came from.
pub fn address_echo(ns: &str, port: u16) {
    let (ready, up) = std::sync::mpsc::channel();
    in_ns(ns, move || {
        let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
        let _ = ready.send(());
        for (mut stream, peer) in listener.incoming().flatten().filter_map(|s| s.peer_addr().ok().map(|p| (s, p))) {
            let _ = stream.write_all(format!("from {}", peer.ip()).as_bytes());
        }
    });
    up.recv_timeout(Duration::from_secs(5)).expect("the server listens");
}
