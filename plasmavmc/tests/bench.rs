//! `scripts/bench-plasmavmc`'s measurements (ignored in the test run): the test guest launched
//! by raw `qemu-system-x86_64` (the same command line the agent builds) and through PlasmaVMC
//! (create → ready line on the console), VMC_BENCH_RUNS times each, alternating; for each
//! run also the time until QEMU answers QMP (raw: from the spawn; PlasmaVMC: from the create),
//! whose difference is the control plane's share. Then VMC_BENCH_CONCURRENT creates at
//! once, to all running. One JSON line per measure to the file VMC_BENCH_OUT names.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Stack;

fn record(line: serde_json::Value) {
    let path = std::env::var("VMC_BENCH_OUT").unwrap_or_else(|_| "/dev/stderr".into());
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).expect("the results file");
    writeln!(file, "{line}").expect("write a result");
    eprintln!("{line}");
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn wait_file_contains(path: &Path, text: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !std::fs::read_to_string(path).unwrap_or_default().contains(text) {
        assert!(Instant::now() < deadline, "{} never held {text:?}", path.display());
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One raw QEMU run: (spawn → QMP socket answering, spawn → ready line), in ms.
fn raw(guest: &Path, dir: &Path) -> (f64, f64) {
    let _ = std::fs::remove_dir_all(dir);
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).expect("a run dir");
    for (name, text) in [("meta-data", "{\"instance-id\":\"raw\",\"local-hostname\":\"raw\"}\n"), ("user-data", "#cloud-config\n{}\n"), ("network-config", "{\"version\":2}\n")] {
        std::fs::write(seed.join(name), text).expect("the seed");
    }
    let disk = dir.join("root.qcow2");
    let made = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&disk).arg("1G").status();
    assert!(made.is_ok_and(|s| s.success()));
    let d = dir.display();
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-name", "guest=raw,debug-threads=on", "-machine", "pc,accel=tcg", "-cpu", "max", "-smp", "1", "-m", "256"])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-vga", "none"])
        .args(["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"])
        .args(["-qmp", &format!("unix:{d}/qmp.sock,server=on,wait=off")])
        .args(["-chardev", &format!("socket,id=console,path={d}/console.sock,server=on,wait=off,logfile={d}/console.log")])
        .args(["-serial", "chardev:console", "-blockdev"])
        .arg(format!("driver=qcow2,node-name=root,file.driver=file,file.filename={d}/root.qcow2,discard=unmap"))
        .args(["-device", "virtio-blk-pci,drive=root", "-blockdev"])
        .arg(format!("driver=vvfat,node-name=cidata,dir={d}/seed,label=cidata,read-only=on"))
        .args(["-device", "virtio-blk-pci,drive=cidata"])
        .args(["-kernel", &guest.join("vmlinuz").display().to_string(), "-initrd", &guest.join("initrd.img").display().to_string()])
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64");
    let qmp = dir.join("qmp.sock");
    while std::os::unix::net::UnixStream::connect(&qmp).is_err() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let qmp_ms = ms(started);
    wait_file_contains(&dir.join("console.log"), "PLASMAVMC-GUEST-READY", Duration::from_secs(120));
    let ready_ms = ms(started);
    let _ = child.kill();
    let _ = child.wait();
    (qmp_ms, ready_ms)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: scripts/bench-plasmavmc"]
async fn bench_plasmavmc() {
    let runs: usize = std::env::var("VMC_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let concurrent: usize = std::env::var("VMC_BENCH_CONCURRENT").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let big = [
        ("PLASMAVMC_AGENT_VCPUS", (concurrent.max(2)).to_string()),
        ("PLASMAVMC_AGENT_MEMORY_MIB", (concurrent.max(2) * 160).to_string()),
        ("PLASMAVMC_AGENT_STOP_TIMEOUT_MS", "1000".to_string()),
    ];
    let stack = Stack::start_with(1, &big).await;
    stack.flavor_and_image("bench", 1, 128);
    let scratch = tempfile::tempdir().expect("a scratch dir");
    let (mut raw_qmp, mut raw_ready, mut vm_qmp, mut vm_ready) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Warm the image cache (a first fetch is not the steady state).
    stack.expect(201, "POST", "/vms", Some(r#"{"name":"warm","spec":{"flavor":"bench","image":"guest"}}"#));
    stack.wait_state("warm", "running", Duration::from_secs(60));
    stack.expect(204, "DELETE", "/vms/warm", None);
    for run in 0..runs {
        let (q, r) = raw(&stack.guest.dir, &scratch.path().join("raw"));
        raw_qmp.push(q);
        raw_ready.push(r);
        let name = format!("b{run}");
        let started = Instant::now();
        let created = stack.expect(201, "POST", "/vms", Some(&format!(r#"{{"name":"{name}","spec":{{"flavor":"bench","image":"guest"}}}}"#)));
        let uid = created["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let dir = stack.run_dir(0, &uid);
        let qmp = dir.join("qmp.sock");
        while std::os::unix::net::UnixStream::connect(&qmp).is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "VM {name} never started");
            std::thread::sleep(Duration::from_millis(1));
        }
        vm_qmp.push(ms(started));
        wait_file_contains(&dir.join("console.log"), "PLASMAVMC-GUEST-READY", Duration::from_secs(120));
        vm_ready.push(ms(started));
        stack.expect(204, "DELETE", &format!("/vms/{name}"), None);
        stack.wait_for("the VM removed", Duration::from_secs(30), |_| !dir.exists());
    }
    record(serde_json::json!({"measure": "raw_qmp_ms", "values": raw_qmp}));
    record(serde_json::json!({"measure": "raw_ready_ms", "values": raw_ready}));
    record(serde_json::json!({"measure": "vm_qmp_ms", "values": vm_qmp}));
    record(serde_json::json!({"measure": "vm_ready_ms", "values": vm_ready}));

    // Concurrent creates to every VM running (QMP answering, status running).
    let started = Instant::now();
    let threads: Vec<_> = (0..concurrent)
        .map(|i| {
            let (url, ca, tenant) = (stack.nodes[0].url(), stack.nodes[0].ca(), stack.tenant.clone());
            std::thread::spawn(move || {
                let body = format!(r#"{{"name":"c{i}","spec":{{"flavor":"bench","image":"guest"}}}}"#);
                Command::new("curl")
                    .args(["-sf", "-o", "/dev/null", "--cacert"])
                    .arg(ca)
                    .args(["-X", "POST", "-H", &format!("authorization: Bearer {tenant}"), "-H", "content-type: application/json"])
                    .args(["-d", &body, &format!("{url}/api/v1/orgs/acme/projects/web/vms")])
                    .status()
                    .is_ok_and(|s| s.success())
            })
        })
        .collect();
    for thread in threads {
        assert!(thread.join().unwrap_or(false), "a concurrent create failed");
    }
    stack.wait_for("every VM running", Duration::from_secs(300), |s| {
        let listed = s.expect(200, "GET", "/vms?limit=100", None);
        let items = listed["items"].as_array().cloned().unwrap_or_default();
        items.len() == concurrent && items.iter().all(|vm| vm["status"]["state"] == "running")
    });
    record(serde_json::json!({"measure": "concurrent_running_ms", "value": ms(started), "count": concurrent}));
}
