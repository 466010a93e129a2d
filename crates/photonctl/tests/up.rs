//! `photonctl up` against stand-in service binaries (photon-test-service behind wrapper
//! scripts named `<service>-server`): start order, Requires gating, restarts, clean stop; and
//! against the real services, with `photonctl db`, `bucket`, `object` and `dns` reaching them
//! and the printed aws-cli and dig commands working as printed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use photon_testkit::{binary, Process};

/// Every catalog port as `up` serves it (flashdns's API, 853, and DNS, 53, moved above 1024),
/// and 853 itself, where `status` looks for flashdns too: a test finds an offset where all of
/// them are free.
const CATALOG_PORTS: [u16; 11] = [2379, 2479, 8080, 9090, 9091, 853, 10853, 10053, 9092, 9093, 10250];

struct Platform {
    dir: tempfile::TempDir,
    offset: u16,
    photonctl: Process,
    _slot: std::fs::File,
}

/// More than enough slots for the tests that run at once.
const MAX_SLOTS: usize = 64;

/// Reserves a port offset for one test: every catalog port + offset is free, below the kernel's
/// ephemeral range (so client source ports and `free_port()` picks never land on it), and no
/// two tests' port sets overlap. Slots are claimed with a lock file held as long as the
/// returned `File` lives, because nextest runs tests in separate processes.
fn reserve_offset() -> (u16, std::fs::File) {
    use std::os::fd::AsRawFd;
    let ephemeral_start: i32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let highest = *CATALOG_PORTS.iter().max().unwrap() as i32;
    let lowest = *CATALOG_PORTS.iter().min().unwrap() as i32;
    // Two offsets clash when they differ by the distance between two catalog ports.
    let distances: std::collections::HashSet<i32> =
        CATALOG_PORTS.iter().flat_map(|&p| CATALOG_PORTS.iter().map(move |&q| p as i32 - q as i32)).collect();
    let mut slots: Vec<i32> = Vec::new();
    let mut offset = 1024 - lowest + 1;
    while offset + highest < ephemeral_start && slots.len() < MAX_SLOTS {
        if slots.iter().all(|&s| !distances.contains(&(offset - s))) {
            slots.push(offset);
        }
        offset += 1;
    }
    for _round in 0..50 {
        for &slot in &slots {
            let path = std::env::temp_dir().join(format!("photonctl-test-port-slot-{slot}.lock"));
            let Ok(file) = std::fs::File::create(&path) else {
                continue;
            };
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue;
            }
            let offset = slot as u16;
            if CATALOG_PORTS.iter().all(|p| std::net::TcpListener::bind(("127.0.0.1", p + offset)).is_ok()) {
                return (offset, file);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no free port offset among {} slots", slots.len());
}

impl Platform {
    /// A bin dir with a wrapper per `(service, extra environment)`.
    fn new(services: &[(&str, &[(&str, &str)])], extra_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let record = dir.path().join("record");
        for (name, env) in services {
            let exports: String = env.iter().map(|(k, v)| format!("export {k}={v}\n")).collect();
            let script = format!(
                "#!/bin/sh\nexport PHOTON_TEST_TEST_RECORD={}\n{exports}exec {} --name {name} \"$@\"\n",
                record.display(),
                binary("photon-test-service").display()
            );
            let path = bin.join(format!("{name}-server"));
            std::fs::write(&path, script).unwrap();
            std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&path).unwrap().permissions(), 0o755);
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        }
        Self::launch(dir, &bin, extra_args)
    }

    /// A bin dir holding the real `<service>-server` binaries of `services`.
    fn real(services: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for name in services {
            let server = format!("{name}-server");
            std::os::unix::fs::symlink(binary(&server), bin.join(&server)).unwrap();
        }
        Self::launch(dir, &bin, &[])
    }

    fn launch(dir: tempfile::TempDir, bin: &Path, extra_args: &[&str]) -> Self {
        let (offset, slot) = reserve_offset();
        let mut photonctl = Process::new("photonctl up", &binary("photonctl"), &dir.path().join("photonctl.log"));
        photonctl
            .arg("up")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--bin-dir")
            .arg(bin)
            .arg("--port-offset")
            .arg(offset.to_string());
        for arg in extra_args {
            photonctl.arg(arg);
        }
        photonctl.start();
        Self { dir, offset, photonctl, _slot: slot }
    }

    fn record_path(&self) -> PathBuf {
        self.dir.path().join("record")
    }

    /// `(service, event, unix ms, pid)` lines the stand-ins wrote.
    fn records(&self) -> Vec<(String, String, u128, i32)> {
        std::fs::read_to_string(self.record_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some((f.first()?.to_string(), f.get(1)?.to_string(), f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
            })
            .collect()
    }

    fn first(&self, service: &str, event: &str) -> Option<u128> {
        self.records().into_iter().find(|r| r.0 == service && r.1 == event).map(|r| r.2)
    }

    fn wait_for_output(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.photonctl.logs().contains(needle) {
                return;
            }
            assert!(self.photonctl.try_wait().is_none(), "photonctl exited while waiting for {needle:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("photonctl never printed {needle:?}");
    }

    fn status_json(&self) -> (i32, serde_json::Value) {
        let out = std::process::Command::new(binary("photonctl"))
            .args(["status", "--output", "json", "--port-offset", &self.offset.to_string(), "--data-dir"])
            .arg(self.dir.path().join("data"))
            .output()
            .unwrap();
        (out.status.code().unwrap_or(-1), serde_json::from_slice(&out.stdout).unwrap_or_default())
    }

    /// SIGTERM to photonctl; it must exit 0 and leave none of the recorded processes alive.
    fn stop_cleanly(&mut self) {
        self.photonctl.signal(libc::SIGTERM);
        let status = self.photonctl.wait_exit(Duration::from_secs(30)).expect("photonctl did not exit after SIGTERM");
        assert!(status.success(), "photonctl exited with {status}");
        for (service, _, _, pid) in self.records() {
            assert!(!alive(pid), "{service} (pid {pid}) is still running after photonctl exited");
        }
    }
}

/// Whether `pid` is still running. A zombie (exited, not yet reaped by whoever inherited it)
/// counts as gone: it runs nothing and holds no port.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

fn status_of(doc: &serde_json::Value, service: &str) -> String {
    doc.as_array()
        .and_then(|rows| rows.iter().find(|r| r["service"] == service))
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn order_of(records: &[(String, String, u128, i32)], event: &str) -> Vec<String> {
    records.iter().filter(|r| r.1 == event).map(|r| r.0.clone()).collect()
}

#[test]
fn starts_in_order_reports_status_and_stops_in_reverse() {
    let none: &[(&str, &str)] = &[];
    let mut platform = Platform::new(
        &[("chainfire", none), ("flaredb", none), ("iam", none), ("plasmavmc", none), ("prismnet", none)],
        &[],
    );
    platform.wait_for_output("PhotonCloud is up", Duration::from_secs(60));

    let starts = order_of(&platform.records(), "start");
    assert_eq!(&starts[..3], ["chainfire", "flaredb", "iam"], "{starts:?}");
    assert_eq!(starts.len(), 5, "{starts:?}");
    let logs = platform.photonctl.logs();
    // Each Requires dependency was healthy before its dependent started.
    for (dep, dependent) in [("chainfire", "flaredb"), ("flaredb", "iam")] {
        let healthy_at =
            logs.find(&format!("{dep} is healthy")).unwrap_or_else(|| panic!("{dep} never healthy:\n{logs}"));
        let started_at = logs.find(&format!("started {dependent} ")).unwrap();
        assert!(healthy_at < started_at, "{dependent} started before {dep} was healthy:\n{logs}");
    }
    assert!(logs.contains("dev-ca/ca.crt"), "up says where the CA is");
    assert!(logs.contains(&format!("https://127.0.0.1:{}", 2379 + platform.offset)), "up prints endpoints");

    let (code, doc) = platform.status_json();
    assert_eq!(code, 0, "{doc}");
    for service in ["chainfire", "flaredb", "iam", "plasmavmc", "prismnet"] {
        assert_eq!(status_of(&doc, service), "healthy", "{doc}");
    }
    assert_eq!(status_of(&doc, "k8shost"), "down");

    platform.stop_cleanly();
    let stops = order_of(&platform.records(), "stop");
    let position =
        |s: &str| stops.iter().position(|x| x == s).unwrap_or_else(|| panic!("{s} never stopped: {stops:?}"));
    assert!(position("plasmavmc") < position("iam") && position("prismnet") < position("iam"), "{stops:?}");
    assert!(position("iam") < position("flaredb") && position("flaredb") < position("chainfire"), "{stops:?}");
}

#[test]
fn a_requires_dependency_that_never_becomes_healthy_blocks_its_dependents() {
    let none: &[(&str, &str)] = &[];
    let mut platform = Platform::new(
        &[
            ("chainfire", &[("PHOTON_TEST_TEST_HEALTH", "unhealthy")]),
            ("flaredb", none),
            ("iam", none),
            ("prismnet", none),
        ],
        &["--start-timeout", "3"],
    );
    platform.wait_for_output(
        "flaredb not started: it requires chainfire, which did not become healthy within 3s",
        Duration::from_secs(30),
    );
    platform.wait_for_output("iam not started: it requires flaredb, which was not started", Duration::from_secs(10));
    // prismnet only Wants chainfire: it starts anyway once the timeout passes.
    platform.wait_for_output("started prismnet", Duration::from_secs(10));
    let starts = order_of(&platform.records(), "start");
    assert!(!starts.contains(&"flaredb".to_string()) && !starts.contains(&"iam".to_string()), "{starts:?}");
    platform.stop_cleanly();
}

#[test]
fn a_crashed_service_is_restarted() {
    let mut platform = Platform::new(
        &[("chainfire", &[("PHOTON_TEST_TEST_CRASH_AFTER_MS", "700"), ("PHOTON_TEST_TEST_CRASH_ONCE", "true")])],
        &[],
    );
    platform.wait_for_output("chainfire exited (exit status: 3); restarting in 1s", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while order_of(&platform.records(), "start").len() < 2 {
        assert!(Instant::now() < deadline, "chainfire was not restarted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let restarted_at = platform.records().iter().filter(|r| r.1 == "start").nth(1).map(|r| r.2).unwrap();
    let first_at = platform.first("chainfire", "start").unwrap();
    assert!(restarted_at - first_at >= 1_500, "restart came after the crash and a 1 s backoff");
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of(&platform.status_json().1, "chainfire") != "healthy" {
        assert!(Instant::now() < deadline, "restarted chainfire never became healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
    platform.stop_cleanly();
}

#[test]
fn killing_photonctl_takes_its_services_with_it() {
    let none: &[(&str, &str)] = &[];
    let mut platform = Platform::new(&[("chainfire", none), ("flaredb", none)], &[]);
    platform.wait_for_output("PhotonCloud is up", Duration::from_secs(60));
    platform.photonctl.kill9();
    let deadline = Instant::now() + Duration::from_secs(15);
    for (service, _, _, pid) in platform.records() {
        while alive(pid) {
            assert!(Instant::now() < deadline, "{service} (pid {pid}) outlived a killed photonctl");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn up_without_any_service_binary_explains_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let empty: &Path = dir.path();
    let out = std::process::Command::new(binary("photonctl"))
        .args(["up", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--bin-dir")
        .arg(empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no service binaries found") && stderr.contains("chainfire-server"), "{stderr}");
}

#[test]
fn status_with_nothing_running_says_down_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    // Held to the end, so no other test starts a platform on these ports meanwhile.
    let (offset, _slot) = reserve_offset();
    let out = std::process::Command::new(binary("photonctl"))
        .args(["status", "--port-offset", &offset.to_string(), "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("NODE") && stdout.lines().count() == 10, "{stdout}");
    assert!(stdout.lines().skip(1).all(|l| l.contains(" down ")), "{stdout}");
}

#[test]
fn status_finds_a_privileged_service_at_its_real_port_as_on_an_installed_node() {
    // As its systemd unit does, a flashdns stand-in serves 853 itself (moved by the test's
    // offset), not `up`'s 10853: status finds it there.
    let dir = tempfile::tempdir().unwrap();
    let (offset, _slot) = reserve_offset();
    let port = 853 + offset;
    let mut service =
        Process::new("flashdns stand-in", &binary("photon-test-service"), &dir.path().join("flashdns.log"));
    service
        .arg("--name")
        .arg("flashdns")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path().join("flashdns"))
        .arg("--dev-ca-dir")
        .arg(dir.path().join("dev-ca"))
        .start();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = std::process::Command::new(binary("photonctl"))
            .args(["status", "--output", "json", "--port-offset", &offset.to_string(), "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if status_of(&doc, "flashdns") == "healthy" {
            let row = doc.as_array().unwrap().iter().find(|r| r["service"] == "flashdns").unwrap();
            assert_eq!(row["endpoint"], format!("https://127.0.0.1:{port}"), "{doc}");
            break;
        }
        assert!(Instant::now() < deadline, "status never found flashdns on {port}: {doc}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_second_up_on_the_same_data_dir_is_refused() {
    let none: &[(&str, &str)] = &[];
    let mut platform = Platform::new(&[("chainfire", none)], &[]);
    platform.wait_for_output("PhotonCloud is up", Duration::from_secs(60));
    let out = std::process::Command::new(binary("photonctl"))
        .args(["up", "--port-offset", "1", "--data-dir"])
        .arg(platform.dir.path().join("data"))
        .arg("--bin-dir")
        .arg(platform.dir.path().join("bin"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    platform.stop_cleanly();
}

#[test]
fn the_real_services_start_in_order_and_photonctl_db_reaches_flaredb() {
    let mut platform =
        Platform::real(&["chainfire", "flaredb", "iam", "flashdns", "fiberlb", "prismnet", "lightningstor", "plasmavmc"]);
    platform.wait_for_output("started flaredb", Duration::from_secs(60));
    let log = platform.photonctl.logs();
    let (chainfire, flaredb) = (log.find("started chainfire").unwrap(), log.find("started flaredb").unwrap());
    assert!(chainfire < flaredb, "flaredb started before chainfire:\n{log}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of(&platform.status_json().1, "flaredb") != "healthy" {
        assert!(Instant::now() < deadline, "flaredb never became healthy: {:?}", platform.status_json());
        std::thread::sleep(Duration::from_millis(200));
    }
    let db = |args: &[&str]| {
        let out = std::process::Command::new(binary("photonctl"))
            .args(["db", "--port-offset", &platform.offset.to_string(), "--data-dir"])
            .arg(platform.dir.path().join("data"))
            .args(args)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    assert_eq!(db(&["put", "app/a", "1"]), (true, "OK (version 1)\n".to_string()));
    db(&["put", "app/b", "2"]);
    assert_eq!(db(&["get", "app/a"]), (true, "app/a = 1\n".to_string()));
    assert_eq!(db(&["scan", "app/", "app0"]), (true, "app/a = 1\napp/b = 2\n".to_string()));
    assert_eq!(db(&["del", "app/a"]), (true, "true\n".to_string()));
    let (ok, text) = db(&["get", "app/a"]);
    assert!(!ok && text.contains("not found"), "{text}");

    // IAM comes up after flaredb and says where the first administrator's password is.
    platform.wait_for_output("its password is in", Duration::from_secs(60));
    let password_file = platform.dir.path().join("data/iam/initial-admin-password");
    let mode = std::fs::metadata(&password_file).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600, "only root reads it");
    let password = std::fs::read_to_string(&password_file).unwrap();
    let log = platform.photonctl.logs();
    assert!(log.find("started flaredb").unwrap() < log.find("started iam").unwrap(), "{log}");
    let url = format!("https://127.0.0.1:{}/api/v1/auth/token", 8080 + platform.offset);
    let out = std::process::Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(platform.dir.path().join("data/dev-ca").join(photon_tls::CA_CERT_FILE))
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(format!(r#"{{"user":"admin","password":"{}"}}"#, password.trim()))
        .arg(&url)
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.contains("access_token"), "the printed password logs in: {answer}");

    // LightningStor starts after IAM, with the service account IAM's bootstrap provisioned.
    platform.wait_for_output("lightningstor is healthy", Duration::from_secs(60));
    let log = platform.photonctl.logs();
    assert!(log.find("iam is healthy").unwrap() < log.find("started lightningstor").unwrap(), "{log}");
    // ... and prints an aws-cli command that works exactly as printed.
    platform.wait_for_output("aws --endpoint-url", Duration::from_secs(30));
    let log = platform.photonctl.logs();
    let printed = log
        .lines()
        .filter(|l| l.contains("lightningstor: "))
        .find_map(|l| l.split_once("try: ").map(|(_, c)| c.trim().to_string()))
        .unwrap();
    let sh = |command: &str| {
        let out = std::process::Command::new("sh").args(["-c", command]).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, text) = sh(&printed);
    assert!(ok, "the printed command failed: {printed}\n{text}");
    let (ok, text) = sh(&printed.replace("s3 ls", "s3 mb s3://printed"));
    assert!(ok, "{text}");
    let (ok, text) = sh(&printed);
    assert!(ok && text.contains("printed"), "{text}");
    // photonctl bucket|object, with the same key.
    let (offset, dir) = (platform.offset, platform.dir.path().to_path_buf());
    let photonctl = |args: &[&str]| {
        let out = std::process::Command::new(binary("photonctl"))
            .args([args[0], "--port-offset", &offset.to_string(), "--data-dir"])
            .arg(dir.join("data"))
            .args(&args[1..])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env("PHOTONCTL_CONFIG_DIR", dir.join("config"))
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, text) = photonctl(&["bucket", "mb", "tools"]);
    assert!(ok, "{text}");
    let (ok, text) = photonctl(&["bucket", "ls"]);
    assert!(ok && text.contains("tools") && text.contains("printed"), "{text}");
    let file = platform.dir.path().join("big.bin");
    let data: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 251) as u8 ^ (i >> 20) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let (ok, text) = photonctl(&["object", "cp", file.to_str().unwrap(), "s3://tools/dir/big.bin"]);
    assert!(ok && text.contains("100%") && text.contains("uploaded"), "a progress bar and a result: {text}");
    let (ok, text) = photonctl(&["object", "ls", "s3://tools"]);
    assert!(ok && text.contains("PRE") && text.contains("dir/"), "{text}");
    let (ok, text) = photonctl(&["object", "ls", "s3://tools/dir/"]);
    assert!(ok && text.contains(&format!("{}  dir/big.bin", data.len())), "{text}");
    let back = platform.dir.path().join("back.bin");
    let (ok, text) = photonctl(&["object", "cp", "s3://tools/dir/big.bin", back.to_str().unwrap()]);
    assert!(ok && text.contains("downloaded"), "{text}");
    assert!(std::fs::read(&back).unwrap() == data, "the round trip is byte-identical");
    let (ok, text) = photonctl(&["bucket", "rb", "tools"]);
    assert!(!ok && text.contains("BucketNotEmpty"), "{text}");
    let (ok, text) = photonctl(&["object", "rm", "s3://tools/dir/big.bin"]);
    assert!(ok, "{text}");
    let (ok, text) = photonctl(&["object", "cp", "s3://tools/dir/big.bin", back.to_str().unwrap()]);
    assert!(!ok && text.contains("NoSuchKey"), "{text}");
    let (ok, text) = photonctl(&["bucket", "rb", "tools"]);
    assert!(ok, "{text}");
    let credentials = platform.dir.path().join("data/lightningstor/aws/credentials");
    let mode = std::fs::metadata(&credentials).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600, "the secret is private");

    // FlashDNS runs unprivileged (its API on 10853, DNS on 10053, moved by the offset) and
    // prints a dig command that works as printed.
    platform.wait_for_output("health.local", Duration::from_secs(60));
    let log = platform.photonctl.logs();
    assert!(log.find("started iam").unwrap() < log.find("started flashdns").unwrap(), "{log}");
    let printed = log
        .lines()
        .filter(|l| l.contains("flashdns: "))
        .find_map(|l| l.split_once("try: ").map(|(_, c)| c.trim().to_string()))
        .unwrap();
    let dns_port = 10053 + platform.offset;
    assert_eq!(printed, format!("dig @127.0.0.1 -p {dns_port} health.local"));
    let (ok, text) = sh(&printed);
    assert!(ok && text.contains("status: NOERROR") && text.contains("127.0.0.1"), "{printed}: {text}");
    let (_, doc) = platform.status_json();
    let row = doc.as_array().unwrap().iter().find(|r| r["service"] == "flashdns").unwrap().clone();
    assert_eq!(row["status"], "healthy", "{doc}");
    assert_eq!(row["endpoint"], format!("https://127.0.0.1:{}", 10853 + platform.offset), "{doc}");
    // FiberLB follows chainfire and is healthy at its API port.
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of(&platform.status_json().1, "fiberlb") != "healthy" {
        assert!(Instant::now() < deadline, "fiberlb never became healthy: {:?}", platform.status_json());
        std::thread::sleep(Duration::from_millis(200));
    }
    // photonctl dns finds it there, as the logged-in administrator.
    let password = platform.dir.path().join("data/iam/initial-admin-password");
    let (ok, text) = photonctl(&["login", "admin", "--password-file", password.to_str().unwrap()]);
    assert!(ok, "{text}");
    let dns = |args: &[&str]| {
        let mut line = vec!["dns", "--org", "default", "--project", "default"];
        line.extend_from_slice(args);
        photonctl(&line[..])
    };
    let (ok, text) = dns(&["zone", "create", "up.test"]);
    assert!(ok && text.contains("up.test."), "{text}");
    // PrismNET answers photonctl net as the same login, tables and JSON.
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of(&platform.status_json().1, "prismnet") != "healthy" {
        assert!(Instant::now() < deadline, "prismnet never became healthy: {:?}", platform.status_json());
        std::thread::sleep(Duration::from_millis(200));
    }
    let net = |args: &[&str]| {
        let mut line = vec!["net", "--org", "default", "--project", "default"];
        line.extend_from_slice(args);
        photonctl(&line[..])
    };
    let (ok, text) = net(&["vpc", "create", "blue", "--cidr", "10.20.0.0/16"]);
    assert!(ok && text.contains("10.20.0.0/16"), "{text}");
    let (ok, text) = net(&["subnet", "create", "blue", "front", "--cidr", "10.20.1.0/24"]);
    assert!(ok && text.contains("10.20.1.1"), "the gateway is shown: {text}");
    let (ok, text) = net(&["port", "create", "blue", "front", "a"]);
    assert!(ok && text.contains("02:7e:0a:14:01:"), "an address and its MAC: {text}");
    let (ok, text) = net(&["--output", "json", "port", "ls", "blue", "front"]);
    let ports: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(ok && ports["items"].as_array().map(Vec::len) == Some(1), "{text}");
    // The port is named in FlashDNS: <port>.<subnet>.<vpc>.<project>.<org>.photon.internal.
    let ip = ports["items"][0]["spec"]["ip"].as_str().unwrap_or_default().to_string();
    let name = "a.front.blue.default.default.photon.internal";
    let dig = |name: &str| sh(&format!("dig @127.0.0.1 -p {dns_port} +short {name} A")).1.trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while dig(name) != ip {
        assert!(Instant::now() < deadline, "{name} never answered {ip}: {}", dig(name));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, text) = net(&["subnet", "create", "blue", "clash", "--cidr", "10.20.1.128/25"]);
    assert!(!ok && text.contains("overlaps subnet front"), "{text}");
    let (ok, text) = net(&["vpc", "rm", "blue"]);
    assert!(ok && text.contains("deleted VPC blue"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dig(name).is_empty() {
        assert!(Instant::now() < deadline, "{name} outlived its VPC: {}", dig(name));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, text) = dns(&["record", "set", "up.test", "www", "A", "192.0.2.53"]);
    assert!(ok, "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, text) = sh(&format!("dig @127.0.0.1 -p {dns_port} +short www.up.test A"));
        if text.trim() == "192.0.2.53" {
            break;
        }
        assert!(Instant::now() < deadline, "www.up.test never answered: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // LightningStor's volumes: made, snapshotted, and reached over NBD as attach-info says.
    let volume = |args: &[&str]| {
        let mut line = vec!["volume", "--org", "default", "--project", "default"];
        line.extend_from_slice(args);
        photonctl(&line[..])
    };
    let (ok, text) = volume(&["create", "disk", "--size", "64M", "--replicas", "1"]);
    assert!(ok && text.contains("67108864"), "{text}");
    let (ok, text) = volume(&["snapshot", "create", "disk", "s1"]);
    assert!(ok && text.contains("s1"), "{text}");
    let (ok, text) = volume(&["--output", "json", "attach-info", "disk", "--for", "here"]);
    assert!(ok, "{text}");
    let info: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    let tls = platform.dir.path().join("qemu-tls");
    std::fs::create_dir_all(&tls).unwrap();
    let ca = info["tls"].as_str().and_then(|t| t.split("(cp ").nth(1)).and_then(|t| t.split(' ').next()).unwrap();
    std::fs::copy(ca, tls.join("ca-cert.pem")).unwrap();
    let url = format!("{}?tls-certificates={}", info["nbd_url"].as_str().unwrap(), tls.display());
    let (ok, text) = sh(&format!("nbdinfo --size '{url}'"));
    assert!(ok && text.trim() == "67108864", "nbdinfo {url}: {text}");
    let (ok, text) = volume(&["rm", "disk"]);
    assert!(!ok && text.contains("still holds"), "a volume with snapshots stays: {text}");
    // PlasmaVMC: this node registered as a hypervisor; a VM created stopped is placed on it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of(&platform.status_json().1, "plasmavmc") != "healthy" {
        assert!(Instant::now() < deadline, "plasmavmc never became healthy: {:?}", platform.status_json());
        std::thread::sleep(Duration::from_millis(200));
    }
    let vmc = |command: &str, args: &[&str]| {
        let mut line = vec![command, "--org", "default", "--project", "default"];
        line.extend_from_slice(args);
        photonctl(&line[..])
    };
    let (ok, text) = vmc("flavor", &["create", "tiny", "--vcpus", "1", "--memory", "128", "--disk", "1"]);
    assert!(ok && text.contains("tiny"), "{text}");
    // A local file is uploaded into PlasmaVMC's bucket (the VM below never boots it).
    let kernel = platform.dir.path().join("not-a-kernel");
    std::fs::write(&kernel, vec![7u8; 3 << 20]).unwrap();
    let (ok, text) = vmc("image", &["--output", "json", "create", "k", "--kernel", &kernel.display().to_string()]);
    // The image as JSON on stdout, then the upload's progress from stderr.
    let image = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>().next().and_then(Result::ok).unwrap_or_default();
    assert!(ok && image["status"]["state"] == "ready", "{text}");
    assert_eq!(image["status"]["parts"]["kernel"]["bytes"], 3 << 20, "{text}");
    let (ok, text) = vmc("vm", &["create", "idle", "--flavor", "tiny", "--image", "k", "--stopped"]);
    assert!(ok && text.contains("idle"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, text) = vmc("vm", &["--output", "json", "show", "idle"]);
        let vm: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_default();
        if ok && vm["status"]["state"] == "stopped" {
            assert!(vm["status"]["node"].is_string(), "{vm}");
            break;
        }
        assert!(Instant::now() < deadline, "the VM was never placed: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, text) = vmc("vm", &["create", "x", "--flavor", "nope", "--image", "k"]);
    assert!(!ok && text.contains("spec.flavor"), "{text}");
    let (ok, text) = vmc("vm", &["rm", "idle"]);
    assert!(ok && text.contains("deleted VM idle"), "{text}");
    platform.stop_cleanly();
}
