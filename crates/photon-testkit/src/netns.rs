//! Test hosts on one machine: network namespaces joined by a bridge, each with its own address,
//! so a test runs N real nodes that can be killed, cut off, healed and restarted. Needs root
//! (CI runs as root) and iproute2.
//!
//! Everything lives in namespaces the lab creates, named after the test process (`pl<pid>x<n>`),
//! so tests run in parallel and the host's own interfaces and routes are never touched: the
//! bridge sits in a namespace of its own, and each node's veth pair is created directly between
//! the two namespaces. Dropping the lab (also when a test panics) kills every process in its
//! namespaces and deletes them; a new lab first removes those of test processes that died.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::Process;

/// The subnet every lab uses inside its own namespaces (labs never see each other).
pub const SUBNET: &str = "10.213.0";

static LABS: AtomicU32 = AtomicU32::new(0);

/// Runs `ip` with `args`; panics with its error output when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
}

/// Like [`ip`], but a failure is only reported (cleanup must go on).
fn ip_quiet(args: &[&str]) -> bool {
    Command::new("ip").args(args).output().map(|o| o.status.success()).unwrap_or(false)
}

fn namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().map(|o| o.stdout).unwrap_or_default();
    String::from_utf8_lossy(&out).lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect()
}

/// Every process in namespace `ns`, killed with SIGKILL.
fn kill_all_in(ns: &str) {
    let out = Command::new("ip").args(["netns", "pids", ns]).output().map(|o| o.stdout).unwrap_or_default();
    for pid in String::from_utf8_lossy(&out).split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
        // SAFETY: kill(2) on a pid the kernel reported in our namespace.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Removes the namespaces of labs whose test process is gone (a test killed before its drop).
fn reap_orphans() {
    for ns in namespaces() {
        let Some(pid) =
            ns.strip_prefix("pl").and_then(|rest| rest.split('x').next()).and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            kill_all_in(&ns);
            ip_quiet(&["netns", "delete", &ns]);
        }
    }
}

/// A set of test hosts on one bridge.
pub struct Lab {
    name: String,
    nodes: usize,
}

impl Lab {
    /// Creates `nodes` hosts, `10.213.0.1` to `10.213.0.<nodes>`, with loopback up.
    pub fn new(nodes: usize) -> Self {
        assert!(
            // SAFETY: geteuid has no preconditions.
            unsafe { libc::geteuid() } == 0,
            "network-namespace tests need root (CI runs as root): run the test suite as root"
        );
        assert!(nodes < 250, "at most 249 nodes");
        reap_orphans();
        let name = format!("pl{}x{}", std::process::id(), LABS.fetch_add(1, Ordering::Relaxed));
        let lab = Self { name, nodes: 0 };
        let switch = lab.switch();
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        let mut lab = lab;
        for i in 0..nodes {
            lab.add_node(i);
        }
        lab
    }

    fn switch(&self) -> String {
        format!("{}sw", self.name)
    }

    /// The namespace of node `i`.
    pub fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.name)
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("{SUBNET}.{}", i + 1)
    }

    pub fn len(&self) -> usize {
        self.nodes
    }

    pub fn is_empty(&self) -> bool {
        self.nodes == 0
    }

    /// The bridge-side end of node `i`'s link (in the switch namespace).
    fn port(i: usize) -> String {
        format!("p{i}")
    }

    /// Adds node `i` (the next one): its namespace, a veth into the bridge, its address.
    pub fn add_node(&mut self, i: usize) {
        assert_eq!(i, self.nodes, "nodes are added in order");
        let (ns, switch, port) = (self.ns(i), self.switch(), Self::port(i));
        ip(&["netns", "add", &ns]);
        self.nodes += 1;
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &switch]);
        ip(&["-n", &switch, "link", "set", &port, "master", "br0"]);
        ip(&["-n", &switch, "link", "set", &port, "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.addr(i)), "dev", "eth0"]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
    }

    /// A process that runs `program` with `args` inside node `i`'s namespace (not started).
    pub fn process(&self, i: usize, name: &str, program: &Path, log: &Path) -> Process {
        let mut process = Process::new(name, Path::new("ip"), log);
        process.arg("netns").arg("exec").arg(self.ns(i)).arg(program);
        process
    }

    /// Like [`Lab::process`], but the process shares the host's mount namespace (`nsenter`
    /// enters only the network namespace), so namespaces it bind-mounts under /run/netns, as
    /// PrismNET does for VPCs, are seen by the test and outlive the process as they do on a host.
    pub fn process_sharing_mounts(&self, i: usize, name: &str, program: &Path, log: &Path) -> Process {
        let mut process = Process::new(name, Path::new("nsenter"), log);
        process.arg(format!("--net=/run/netns/{}", self.ns(i))).arg("--").arg(program);
        process
    }

    /// A name for a namespace of the test's own (a "machine"), removed with the lab.
    pub fn extra_ns(&self, label: &str) -> String {
        format!("{}m{label}", self.name)
    }

    /// Runs a command inside node `i`'s namespace and returns its output.
    pub fn exec(&self, i: usize, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(i), program])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", self.ns(i)))
    }

    /// Kills every process of node `i` (a machine that loses power).
    pub fn kill_node(&self, i: usize) {
        kill_all_in(&self.ns(i));
    }

    /// Cuts node `i`'s link: nothing reaches it or leaves it until [`Lab::heal`].
    pub fn cut(&self, i: usize) {
        ip(&["-n", &self.switch(), "link", "set", &Self::port(i), "down"]);
    }

    pub fn heal(&self, i: usize) {
        ip(&["-n", &self.switch(), "link", "set", &Self::port(i), "up"]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let ns = self.ns(i);
            kill_all_in(&ns);
            ip_quiet(&["netns", "delete", &ns]);
        }
        // What the nodes' services made (PrismNET's VPC namespaces, `<node ns>v<vni>`) and the
        // test's own namespaces ([`Lab::extra_ns`]).
        let made = [format!("{}n", self.name), format!("{}m", self.name)];
        for ns in namespaces().into_iter().filter(|ns| made.iter().any(|p| ns.starts_with(p.as_str()))) {
            kill_all_in(&ns);
            ip_quiet(&["netns", "delete", &ns]);
        }
        ip_quiet(&["netns", "delete", &self.switch()]);
    }
}
