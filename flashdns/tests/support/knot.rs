//! A real Knot DNS server (`knotd`, Debian package `knot`) serving fixture zones on a loopback
//! port: the reference implementation the differential tests compare flashdns against; or a
//! secondary of flashdns's (`Knot::start_secondary`), for the zone transfer tests.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::query::{ask, Query};

/// How long knotd may take to load every zone and answer its SOA.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Ports handed out, below the kernel's ephemeral range so no client socket holds one by
/// chance; the same range and lock files as `photon_testkit::free_port`, so the two allocators
/// never hand out the same port to concurrent test processes.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Port claims (locked files) this process holds until it exits.
static CLAIMED: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A running `knotd`, killed and its directory removed on drop.
pub struct Knot {
    child: Child,
    addr: SocketAddr,
    // Declared after `child`: dropped (deleted) only once the process is gone.
    dir: tempfile::TempDir,
}

impl Knot {
    /// Starts knotd serving `zones` (origin, zone file) on 127.0.0.1, UDP and TCP on one port,
    /// and waits until it answers every zone's SOA. Panics with knotd's log if it does not.
    pub fn start(zones: &[(&str, &Path)]) -> Knot {
        let dir = tempfile::Builder::new().prefix("knotd-").tempdir().expect("cannot create a tempdir for knotd");
        let port = free_udp_tcp_port();
        let conf = config(dir.path(), port, zones);
        let mut knot = Knot::launch(dir, port, &conf);
        knot.wait_ready(zones);
        knot
    }

    /// Starts knotd on `port` (from `reserve_port`) as a secondary of `secondary.zone`: it
    /// transfers the zone from `secondary.primary` signed with the hmac-sha256 key, and takes
    /// NOTIFY from the primary's address signed with it. Returns once knotd answers queries;
    /// the zone may not be transferred yet.
    pub fn start_secondary(port: u16, secondary: &Secondary) -> Knot {
        let dir = tempfile::Builder::new().prefix("knotd-").tempdir().expect("cannot create a tempdir for knotd");
        let conf = secondary_config(dir.path(), port, secondary);
        let knot = Knot::launch(dir, port, &conf);
        let deadline = Instant::now() + START_TIMEOUT;
        let probe =
            Query { name: absolute(secondary.zone), rtype: RecordType::SOA, edns: None, dnssec_ok: false, tcp: false };
        while ask(knot.addr, &probe).is_err() {
            assert!(Instant::now() < deadline, "knotd on {} never answered; its log:\n{}", knot.addr, knot.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        knot
    }

    /// Runs knotd with the configuration `conf` (written into `dir`) on 127.0.0.1:`port`.
    fn launch(dir: tempfile::TempDir, port: u16, conf: &str) -> Knot {
        let knotd = knotd_path();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let conf_path = dir.path().join("knot.conf");
        fs::write(&conf_path, conf).expect("cannot write knot.conf");
        let log = File::create(dir.path().join("knotd.log")).expect("cannot create knotd.log");
        let log_err = log.try_clone().expect("cannot dup knotd.log");
        // Foreground (no -d): the child is knotd itself, so killing it stops the server.
        let child = Command::new(&knotd)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", knotd.display()));
        Knot { child, addr, dir }
    }

    /// Where knotd listens, UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// knotd's log so far (its stdout and stderr).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("knotd.log")).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    fn wait_ready(&mut self, zones: &[(&str, &Path)]) {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pending: Vec<String> = zones.iter().map(|(origin, _)| absolute(origin)).collect();
        let mut last_error = String::new();
        while !pending.is_empty() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("knotd exited ({status}) before serving its zones; its log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!(
                    "knotd on {} did not serve the SOA of {pending:?} within {START_TIMEOUT:?} \
                     (last: {last_error}); its log:\n{}",
                    self.addr,
                    self.log()
                );
            }
            pending.retain(|origin| {
                let q =
                    Query { name: origin.clone(), rtype: RecordType::SOA, edns: None, dnssec_ok: false, tcp: false };
                match ask(self.addr, &q) {
                    Ok(m) if m.response_code == ResponseCode::NoError && m.authoritative && !m.answers.is_empty() => {
                        false
                    }
                    Ok(m) => {
                        last_error = format!("{origin} SOA: {} aa={}", m.response_code, m.authoritative);
                        true
                    }
                    Err(e) => {
                        last_error = format!("{origin} SOA: {e}");
                        true
                    }
                }
            });
            if !pending.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        // SIGKILL: nothing of knotd's state is kept, so there is nothing to shut down cleanly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The knotd binary on PATH, or a panic saying how to install it: the differential tests must
/// not pass vacuously on a machine without the reference server.
pub fn knotd_path() -> PathBuf {
    find_on_path("knotd").unwrap_or_else(|| {
        panic!("knotd (Debian package `knot`) is not installed or not on PATH: run scripts/setup as root")
    })
}

/// The first executable called `program` in PATH's directories (and /usr/sbin, where Debian
/// puts knotd and which non-root PATHs often lack).
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// knotd's configuration: everything under `dir`, zones loaded from their files once and never
/// written back, no journal, and the semantic checks off so fixtures may hold odd data on
/// purpose. One worker of each kind: the machines running tests are small.
fn config(dir: &Path, port: u16, zones: &[(&str, &Path)]) -> String {
    let dir = dir.display();
    let mut conf = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: {dir}\n    udp-workers: 1\n    tcp-workers: 1\n    \
         background-workers: 1\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: {dir}\n\
         template:\n  - id: default\n    storage: {dir}\n    zonefile-sync: -1\n    zonefile-load: whole\n    \
         journal-content: none\n    semantic-checks: off\n\
         zone:\n"
    );
    for (origin, file) in zones {
        let file = fs::canonicalize(file).unwrap_or_else(|e| panic!("zone file {}: {e}", file.display()));
        let _ = write!(conf, "  - domain: {}\n    file: {}\n", absolute(origin), file.display());
    }
    conf
}

/// A knotd secondary's view of its primary (`Knot::start_secondary`).
pub struct Secondary<'a> {
    pub zone: &'a str,
    /// The primary's DNS address (transfers, and where NOTIFY comes from).
    pub primary: SocketAddr,
    pub key_name: &'a str,
    /// The hmac-sha256 secret, base64.
    pub secret: &'a str,
}

/// knotd as a secondary of one zone: nothing loaded from or written to zone files, the zone
/// kept only in memory, the same small server as `config`.
fn secondary_config(dir: &Path, port: u16, secondary: &Secondary) -> String {
    let dir = dir.display();
    let Secondary { zone, primary, key_name, secret } = secondary;
    let (primary_ip, primary_port) = (primary.ip(), primary.port());
    let zone = absolute(zone);
    format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: {dir}\n    udp-workers: 1\n    tcp-workers: 1\n    \
         background-workers: 1\n\
         log:\n  - target: stderr\n    any: info\n\
         database:\n    storage: {dir}\n\
         key:\n  - id: {key_name}\n    algorithm: hmac-sha256\n    secret: {secret}\n\
         remote:\n  - id: primary\n    address: {primary_ip}@{primary_port}\n    key: {key_name}\n\
         acl:\n  - id: notify-from-primary\n    address: {primary_ip}\n    key: {key_name}\n    action: notify\n\
         template:\n  - id: default\n    storage: {dir}\n    zonefile-sync: -1\n    zonefile-load: none\n    \
         journal-content: none\n    semantic-checks: off\n\
         zone:\n  - domain: {zone}\n    master: primary\n    acl: notify-from-primary\n"
    )
}

/// A port free for UDP and TCP on 127.0.0.1, claimed for this process, to give a knotd that is
/// started later.
pub fn reserve_port() -> u16 {
    free_udp_tcp_port()
}

fn absolute(origin: &str) -> String {
    if origin.ends_with('.') {
        origin.to_string()
    } else {
        format!("{origin}.")
    }
}

/// A port free for both UDP and TCP on 127.0.0.1, claimed with a lock file so that no other
/// test process (nextest runs each test in its own) is handed it while this one runs.
fn free_udp_tcp_port() -> u16 {
    let seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let span = u64::from(PORTS.end - PORTS.start);
    for step in 0..span {
        let offset = (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16).wrapping_add(step * 7919) % span;
        let port = PORTS.start + offset as u16;
        let path = std::env::temp_dir().join(format!("photon-test-port-{port}.lock"));
        let Ok(file) = File::create(&path) else { continue };
        if file.try_lock().is_err() {
            continue;
        }
        // Both must be free now; the sockets close before knotd binds, the lock stays.
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            CLAIMED.lock().unwrap_or_else(|p| p.into_inner()).push(file);
            return port;
        }
    }
    panic!("no port in {PORTS:?} is free for both UDP and TCP");
}
