//! A PhotonCloud cluster of real binaries on test hosts ([`Lab`]): each node has its own
//! address, certificate (one CA for the cluster), cluster-config.json and data dirs, and runs the
//! services of its role (control plane: chainfire, flaredb, IAM; worker: chainfire) on their
//! standard ports, exactly as the systemd units would. Tests kill, cut, heal and restart nodes and
//! talk to them with real clients run inside the nodes' namespaces.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::{binary, Lab, Process};

/// The services a node runs, in start order.
pub const CONTROL_PLANE: &[&str] = &["chainfire", "flaredb", "iam"];
pub const WORKER: &[&str] = &["chainfire"];

fn api_port(service: &str) -> u16 {
    match service {
        "chainfire" => 2379,
        "flaredb" => 2479,
        "iam" => 8080,
        "flashdns" => 853,
        "fiberlb" => 9092,
        "prismnet" => 9091,
        "plasmavmc" => 9090,
        other => panic!("the cluster harness does not run {other}"),
    }
}

pub struct Node {
    /// (service, process), in start order. (Declared first: dropped, and their logs shown on a
    /// failure, before the data dir that holds the logs goes.)
    pub services: Vec<(String, Process)>,
    pub name: String,
    pub addr: String,
    pub control_plane: bool,
    /// cluster-config.json of this node.
    pub config: PathBuf,
    pub data: TempDir,
}

impl Node {
    pub fn service(&mut self, name: &str) -> &mut Process {
        self.services
            .iter_mut()
            .find(|(s, _)| s == name)
            .map(|(_, p)| p)
            .unwrap_or_else(|| panic!("node {} runs no {name}", self.name))
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub lab: Lab,
    /// CA, node certificates, keys and cluster-config files.
    pub secrets: TempDir,
    /// How many nodes bootstrap the cluster (the first ones): every one lists all of them.
    bootstrap: usize,
}

impl Cluster {
    /// `control_plane` bootstrap nodes (not started).
    pub fn new(control_plane: usize) -> Self {
        let secrets = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        photon_tls::DevCa::load_or_create(secrets.path()).unwrap_or_else(|e| panic!("CA: {e}"));
        let key: String = (0..32).map(|i| format!("{:02x}", (i * 37 + std::process::id() as usize) % 256)).collect();
        std::fs::write(secrets.path().join("gossip.key"), format!("{key}\n")).unwrap_or_else(|e| panic!("{e}"));
        let master: String = (0..32).map(|i| format!("{:02x}", (i * 11 + 3) % 256)).collect();
        std::fs::write(secrets.path().join("iam-master.key"), &master).unwrap_or_else(|e| panic!("{e}"));
        // FlashDNS's DNSSEC master key, shared by every node as an operator installs it.
        std::fs::write(secrets.path().join("flashdns-master.key"), &master).unwrap_or_else(|e| panic!("{e}"));
        // FiberLB's, sealing listeners' private keys.
        std::fs::write(secrets.path().join("fiberlb-master.key"), master).unwrap_or_else(|e| panic!("{e}"));
        let mut cluster = Self { lab: Lab::new(0), secrets, nodes: Vec::new(), bootstrap: control_plane };
        for _ in 0..control_plane {
            cluster.add_node(true, true, None);
        }
        cluster
    }

    /// The bootstrap nodes' peer addresses on `port`.
    fn bootstrap_peers(&self, port: u16) -> Vec<String> {
        (0..self.bootstrap).map(|i| format!("{}:{port}", self.lab.addr(i))).collect()
    }

    /// Adds a node (not started). A bootstrap node is one of the first control-plane nodes; a
    /// later one joins through node 0's chainfire. `config` overrides fields of its
    /// cluster-config.json (for bad-input tests).
    pub fn add_node(&mut self, control_plane: bool, bootstrap: bool, config: Option<Value>) -> usize {
        let i = self.nodes.len();
        self.lab.add_node(i);
        let name = format!("node{:02}", i + 1);
        let addr = self.lab.addr(i);
        let ca = photon_tls::DevCa::load(self.secrets.path()).unwrap_or_else(|e| panic!("CA: {e}"));
        let names = vec![addr.clone(), "127.0.0.1".into(), "localhost".into(), name.clone()];
        ca.issue(self.secrets.path(), &name, &names).unwrap_or_else(|e| panic!("certificate: {e}"));
        assert_eq!(bootstrap, i < self.bootstrap, "the first {} nodes, and only they, bootstrap", self.bootstrap);
        let chainfire_peers = self.bootstrap_peers(2380);
        // flaredb store ids are positions in flaredb_peers: the bootstrap stores, then every
        // control-plane node that joined later, in order.
        let mut flaredb_peers = self.bootstrap_peers(2480);
        for later in self.nodes.iter().skip(self.bootstrap).filter(|n| n.control_plane) {
            flaredb_peers.push(format!("{}:2480", later.addr));
        }
        if control_plane && !bootstrap {
            flaredb_peers.push(format!("{addr}:2480"));
        }
        let mut doc = json!({
            "node_id": addr,
            "bootstrap": bootstrap,
            "leader_url": format!("https://{}:2379", self.lab.addr(0)),
            "initial_peers": chainfire_peers,
            "flaredb_peers": flaredb_peers,
            "tls": {"ca": "ca.crt", "cert": format!("{name}.crt"), "key": format!("{name}.key")},
            "gossip_key": "gossip.key",
            "roles": [if control_plane { "control-plane" } else { "worker" }],
        });
        if let (Some(extra), Some(map)) = (config, doc.as_object_mut()) {
            for (k, v) in extra.as_object().into_iter().flatten() {
                map.insert(k.clone(), v.clone());
            }
        }
        let config = self.secrets.path().join(format!("{name}.json"));
        std::fs::write(&config, doc.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let data = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        crate::server::enterable(data.path());
        let mut node = Node { name, addr, control_plane, config, data, services: Vec::new() };
        let services = if control_plane { CONTROL_PLANE } else { WORKER };
        for service in services {
            let process = self.prepare(i, &node, service);
            node.services.push((service.to_string(), process));
        }
        self.nodes.push(node);
        i
    }

    fn prepare(&self, i: usize, node: &Node, service: &str) -> Process {
        let program = binary(&format!("{service}-server"));
        let log = node.data.path().join(format!("{service}.log"));
        let name = format!("{}/{service}", node.name);
        // PrismNET's VPC namespaces must outlive it and be seen by the test, as on a host.
        let mut p = if service == "prismnet" {
            self.lab.process_sharing_mounts(i, &name, &program, &log)
        } else {
            self.lab.process(i, &name, &program, &log)
        };
        let secrets = self.secrets.path();
        let data = node.data.path().join(service);
        let listen = if node.control_plane { "0.0.0.0" } else { "127.0.0.1" };
        p.arg("--data-dir").arg(&data).arg("--log-level").arg("info");
        p.arg("--listen").arg(format!("{listen}:{}", api_port(service)));
        match service {
            "chainfire" => {
                p.arg("--cluster-config").arg(&node.config).arg("--raft-listen").arg("0.0.0.0:2380");
                p.env("CHAINFIRE_GOSSIP_LISTEN", "0.0.0.0:2381");
                if node.control_plane {
                    p.env(
                        "CHAINFIRE_GOSSIP_SERVICES",
                        r#"["flaredb=https://127.0.0.1:2479", "iam=https://127.0.0.1:8080"]"#,
                    );
                }
            }
            "flaredb" => {
                p.arg("--cluster-config").arg(&node.config).arg("--raft-listen").arg("0.0.0.0:2480");
            }
            "flashdns" => {
                p.arg("--cluster-config").arg(&node.config);
                p.env("FLASHDNS_DNS_LISTEN", "0.0.0.0:53");
                // Every node opens the same zones' keys.
                p.env("FLASHDNS_DNSSEC_MASTER_KEY_FILE", secrets.join("flashdns-master.key"));
            }
            "fiberlb" => {
                p.arg("--cluster-config").arg(&node.config);
                p.env("FIBERLB_SECRETS_MASTER_KEY_FILE", secrets.join("fiberlb-master.key"));
                // VIPs go on the node's link to the shared segment; the claim names the node.
                p.env("FIBERLB_VIP_INTERFACE", "eth0");
                p.env("FIBERLB_VIP_NODE", &node.name);
                if !node.control_plane {
                    // IAM runs on control-plane nodes: a worker asks the first.
                    p.env("FIBERLB_IAM_URL", format!("https://{}:8080", self.lab.addr(0)));
                }
            }
            "prismnet" => {
                p.arg("--cluster-config").arg(&node.config);
                p.env("PRISMNET_DATAPLANE_NODE", &node.name);
                p.env("PRISMNET_DATAPLANE_VTEP_ADDRESS", &node.addr);
                p.env("PRISMNET_DATAPLANE_NETNS_PREFIX", format!("{}v", self.lab.ns(i)));
                // Drift repaired within tests' patience.
                p.env("PRISMNET_DATAPLANE_RESYNC_MS", "2000");
                // The shared segment doubles as the external network; floating IPs are taken
                // from its upper half (nodes use the lower).
                p.env("PRISMNET_EXTERNAL_INTERFACE", "eth0");
                p.env("PRISMNET_EXTERNAL_FLOATING_CIDR", format!("{}.128/25", crate::netns::SUBNET));
                if !node.control_plane {
                    p.env("PRISMNET_IAM_URL", format!("https://{}:8080", self.lab.addr(0)));
                }
                // Ports are named when the cluster runs FlashDNS (on node 0, added first), as
                // PrismNET's service account, whose key node 0's IAM wrote.
                if self.nodes.first().is_some_and(|n| n.services.iter().any(|(s, _)| s == "flashdns")) {
                    p.env("PRISMNET_DNS_FLASHDNS", format!("https://{}:853", self.lab.addr(0)));
                    p.env("PRISMNET_DNS_RESYNC_MS", "2000");
                    let key = self.nodes[0].data.path().join("iam/services/prismnet.json");
                    p.env("PRISMNET_IAM_CREDENTIALS_FILE", key);
                }
            }
            "plasmavmc" => {
                p.arg("--cluster-config").arg(&node.config);
                // Workers run VMs (software emulation, small); control-plane nodes the API and
                // the scheduler only.
                p.env("PLASMAVMC_AGENT_ENABLED", if node.control_plane { "false" } else { "true" });
                p.env("PLASMAVMC_AGENT_NODE", &node.name);
                p.env("PLASMAVMC_AGENT_ACCEL", "tcg");
                p.env("PLASMAVMC_AGENT_VCPUS", "2");
                p.env("PLASMAVMC_AGENT_MEMORY_MIB", "1024");
                p.env("PLASMAVMC_AGENT_STOP_TIMEOUT_MS", "3000");
                p.env("PLASMAVMC_AGENT_RESYNC_MS", "1000");
                // No LightningStor in this cluster: nodes fetch images from their URLs.
                p.env("PLASMAVMC_IMAGES_IMPORT", "false");
                if !node.control_plane {
                    p.env("PLASMAVMC_IAM_URL", format!("https://{}:8080", self.lab.addr(0)));
                }
                // NICs are PrismNET ports (prismnet runs on every node), made as PlasmaVMC's
                // account, whose key node 0's IAM wrote.
                let key = self.nodes.first().map(|n| n.data.path()).unwrap_or(node.data.path()).join("iam/services/plasmavmc.json");
                p.env("PLASMAVMC_IAM_CREDENTIALS_FILE", key);
            }
            "iam" => {
                p.arg("--tls-cert").arg(secrets.join(format!("{}.crt", node.name)));
                p.arg("--tls-key").arg(secrets.join(format!("{}.key", node.name)));
                p.arg("--cluster-config").arg(&node.config);
                p.env("IAM_KEYS_MASTER_KEY_FILE", secrets.join("iam-master.key"));
                // PrismNET names ports in FlashDNS as its own account; PlasmaVMC makes VMs' ports
                // in PrismNET as its own.
                p.env("IAM_BOOTSTRAP_SERVICES", r#"["prismnet", "plasmavmc"]"#);
            }
            _ => {}
        }
        p
    }

    /// Adds an application-tier `service` (flashdns, fiberlb, prismnet, plasmavmc) to node `i`, started by the next
    /// `start`/`start_service`, as its unit would run on that node.
    pub fn add_service(&mut self, i: usize, service: &str) {
        let process = self.prepare(i, &self.nodes[i], service);
        self.nodes[i].services.push((service.to_string(), process));
    }

    /// Starts `service` on node `i` and waits (up to 30 s) for its `/health` to answer; panics
    /// with its log if it exits or never answers.
    pub fn start_service(&mut self, i: usize, service: &str) {
        self.nodes[i].service(service).start();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.health(i, service).0 == 0 {
            if let Some(status) = self.nodes[i].service(service).try_wait() {
                panic!("{service} on node {i} exited ({status}):\n{}", self.log(i, service));
            }
            assert!(Instant::now() < deadline, "{service} on node {i} never answered:\n{}", self.log(i, service));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.secrets.path().join("ca.crt")
    }

    /// Starts every service of node `i`, in order.
    pub fn start(&mut self, i: usize) {
        self.start_nodes(&[i]);
    }

    /// Starts `nodes` together, a level at a time as systemd does with Type=notify units: each
    /// service on every node, then the next once those accept connections (their `/health`
    /// answers, healthy or not).
    pub fn start_nodes(&mut self, nodes: &[usize]) {
        for level in CONTROL_PLANE {
            let mut started = Vec::new();
            for &i in nodes {
                if let Some((_, process)) = self.nodes[i].services.iter_mut().find(|(s, _)| s == level) {
                    if process.pid().is_none() || process.try_wait().is_some() {
                        process.start();
                        started.push(i);
                    }
                }
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            for i in started {
                while self.health(i, level).0 == 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Kills every process of node `i` (and forgets them, so `start` starts them again).
    pub fn kill(&mut self, i: usize) {
        self.lab.kill_node(i);
        for (_, process) in &mut self.nodes[i].services {
            process.kill9();
        }
    }

    /// curl inside node `i`: (HTTP status, body as JSON or a JSON string).
    pub fn curl(&self, i: usize, url: &str) -> (u16, Value) {
        let ca = self.ca();
        let out = self.lab.exec(
            i,
            "curl",
            &["-s", "-m", "3", "-o", "-", "-w", "\n%{http_code}", "--cacert", &ca.display().to_string(), url],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
        (code.trim().parse().unwrap_or(0), body)
    }

    /// curl inside node `i` with `args` (trusting the cluster CA): (HTTP status, body as JSON or
    /// a JSON string).
    pub fn curl_with(&self, i: usize, args: &[&str]) -> (u16, Value) {
        let ca = self.ca().display().to_string();
        let mut all = vec!["-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}", "--cacert", ca.as_str()];
        all.extend_from_slice(args);
        let out = self.lab.exec(i, "curl", &all);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::String(body.into())))
    }

    /// The first administrator's access token, from node 0's IAM (with the password whichever
    /// node's IAM wrote).
    pub fn admin_token(&self) -> String {
        let password = self
            .nodes
            .iter()
            .find_map(|n| std::fs::read_to_string(n.data.path().join("iam/initial-admin-password")).ok())
            .unwrap_or_else(|| panic!("no node's IAM wrote the first administrator's password"));
        let body = serde_json::json!({"user": "admin", "password": password.trim()}).to_string();
        let (status, answer) = self.curl_with(
            0,
            &["-H", "content-type: application/json", "--data-binary", &body, "https://127.0.0.1:8080/api/v1/auth/token"],
        );
        assert_eq!(status, 200, "admin logs in: {answer}");
        answer["access_token"].as_str().unwrap_or_else(|| panic!("no token in {answer}")).to_string()
    }

    /// Creates org `org` with project `project` as `token` through node 0's IAM, waiting for
    /// IAM replicas that do not know the administrator's binding yet (they reload every second).
    pub fn org_with_project(&self, token: &str, org: &str, project: &str) {
        let bearer = format!("authorization: Bearer {token}");
        let json = "content-type: application/json";
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = serde_json::json!({"name": org}).to_string();
            let (status, answer) =
                self.curl_with(0, &["-H", &bearer, "-H", json, "--data-binary", &body, "https://127.0.0.1:8080/api/v1/orgs"]);
            if status / 100 == 2 {
                break;
            }
            assert!(status == 403 && Instant::now() < deadline, "create org {org}: {status} {answer}");
            std::thread::sleep(Duration::from_millis(200));
        }
        let url = format!("https://127.0.0.1:8080/api/v1/orgs/{org}/projects");
        let body = serde_json::json!({"name": project}).to_string();
        let (status, answer) = self.curl_with(0, &["-H", &bearer, "-H", json, "--data-binary", &body, &url]);
        assert_eq!(status / 100, 2, "create project {org}/{project}: {answer}");
    }

    /// `/health` of `service` on node `i` (its loopback address).
    pub fn health(&self, i: usize, service: &str) -> (u16, Value) {
        self.curl(i, &format!("https://127.0.0.1:{}/health", api_port(service)))
    }

    /// Waits until every service of node `i` answers healthy; panics with the last answers.
    pub fn wait_healthy(&self, i: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for (service, _) in &self.nodes[i].services {
            loop {
                let (code, body) = self.health(i, service);
                if code == 200 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{} {service} not healthy after {timeout:?}: {code} {body}",
                    self.nodes[i].name
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Runs photonctl inside node `i` against its local services (trusting the cluster CA).
    pub fn photonctl(&self, i: usize, args: &[&str]) -> std::process::Output {
        let program = binary("photonctl");
        let ca = self.ca().display().to_string();
        let mut all: Vec<&str> = vec!["--ca", &ca];
        all.extend_from_slice(args);
        self.lab.exec(i, &program.display().to_string(), &all)
    }

    /// etcdctl inside node `i` against its local chainfire.
    pub fn etcdctl(&self, i: usize, args: &[&str]) -> std::process::Output {
        let ca = self.ca().display().to_string();
        let mut all: Vec<&str> = vec!["--endpoints=https://127.0.0.1:2379", "--cacert", &ca, "--command-timeout=5s"];
        all.extend_from_slice(args);
        self.lab.exec(i, "etcdctl", &all)
    }

    /// The membership table as node `i`'s chainfire has it (`photonctl node ls --output json`).
    pub fn node_table(&self, i: usize) -> Vec<Value> {
        let out = self.photonctl(i, &["node", "ls", "--output", "json"]);
        serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default()
    }

    /// State of node `node` in node `observer`'s table (`alive`, `suspect`, `dead`, or empty).
    pub fn state_of(&self, observer: usize, node: usize) -> String {
        let addr = &self.nodes[node].addr;
        self.node_table(observer)
            .iter()
            .find(|n| n["node_id"] == addr.as_str())
            .and_then(|n| n["state"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Waits until `check` holds, polling; panics with `what` after `timeout`. Returns how long it took.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut check: impl FnMut(&Self) -> bool) -> Duration {
        let start = Instant::now();
        while !check(self) {
            assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }

    /// Node `i`'s log of `service`.
    pub fn log(&self, i: usize, service: &str) -> String {
        std::fs::read_to_string(self.nodes[i].data.path().join(format!("{service}.log"))).unwrap_or_default()
    }

    pub fn secrets(&self) -> &Path {
        self.secrets.path()
    }
}
