//! `scripts/bench-plasmavmc`'s measurements (ignored in the test run): the test guest launched
//! by raw `qemu-system-x86_64` (the same command line the agent builds) and through PlasmaVMC
//! (create → ready line on the console), VMC_BENCH_RUNS times each, alternating; for each
//! run also the time until QEMU answers QMP (raw: from the spawn; PlasmaVMC: from the create),
//! whose difference is the control plane's share. Then VMC_BENCH_CONCURRENT creates at
//! once, to all running, beside as many raw QEMUs spawned at once; and VMC_BENCH_MIGRATIONS
//! live migrations back and forth between two nodes (QEMU's downtime, and the request until
//! the VM runs on the target). One JSON line per measure to the file VMC_BENCH_OUT names.

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

/// A raw QEMU of the test guest in `dir` (seed and disk made there), not started: the command
/// line the agent builds.
fn raw_command(guest: &Path, dir: &Path) -> Command {
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
    let mut command = Command::new("qemu-system-x86_64");
    command
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
        .stderr(Stdio::null());
    command
}

fn wait_qmp(dir: &Path) {
    let qmp = dir.join("qmp.sock");
    while std::os::unix::net::UnixStream::connect(&qmp).is_err() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One raw QEMU run: (spawn → QMP socket answering, spawn → ready line), in ms.
fn raw(guest: &Path, dir: &Path) -> (f64, f64) {
    let mut command = raw_command(guest, dir);
    let started = Instant::now();
    let mut child = command.spawn().expect("qemu-system-x86_64");
    wait_qmp(dir);
    let qmp_ms = ms(started);
    wait_file_contains(&dir.join("console.log"), "PLASMAVMC-GUEST-READY", Duration::from_secs(120));
    let ready_ms = ms(started);
    let _ = child.kill();
    let _ = child.wait();
    (qmp_ms, ready_ms)
}

/// `count` raw QEMUs spawned at once, until every one answers QMP (what PlasmaVMC's
/// `running` state means), in ms.
fn raw_concurrent(guest: &Path, dir: &Path, count: usize) -> f64 {
    let mut commands: Vec<Command> = (0..count).map(|i| raw_command(guest, &dir.join(format!("c{i}")))).collect();
    let started = Instant::now();
    let mut children: Vec<_> = commands.iter_mut().map(|c| c.spawn().expect("qemu-system-x86_64")).collect();
    for i in 0..count {
        wait_qmp(&dir.join(format!("c{i}")));
    }
    let took = ms(started);
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    took
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

    // Concurrent starts to every QEMU answering: raw first, then through PlasmaVMC (status
    // running means QMP answered).
    let raw_ms = raw_concurrent(&stack.guest.dir, &scratch.path().join("concurrent"), concurrent);
    record(serde_json::json!({"measure": "raw_concurrent_ms", "value": raw_ms, "count": concurrent}));
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
    drop(stack);

    // Live migrations back and forth between two nodes, the root disk on a LightningStor
    // volume: QEMU's downtime, and the request until the VM runs on the target.
    let migrations: usize = std::env::var("VMC_BENCH_MIGRATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let stack = Stack::start_with_storage(2).await;
    stack.flavor_and_image("bench", 1, 256);
    stack.volumes(201, "POST", "/volumes", Some(r#"{"name":"root","spec":{"size_bytes":67108864,"replicas":1}}"#));
    let vm = stack.expect(201, "POST", "/vms", Some(r#"{"name":"m","spec":{"flavor":"bench","image":"guest","root_volume":"root"}}"#));
    let uid = vm["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    let running = stack.wait_state("m", "running", Duration::from_secs(90));
    let mut node = running["status"]["node"].as_str().unwrap_or_default().to_string();
    let index = |node: &str| node.trim_start_matches("node-").parse::<usize>().unwrap_or(0);
    stack.wait_console(index(&node), &uid, "guest: count 2", 1, Duration::from_secs(90));
    let (mut downtime, mut total) = (Vec::new(), Vec::new());
    for _ in 0..migrations {
        let target = format!("node-{}", 1 - index(&node));
        let started = Instant::now();
        stack.expect(202, "POST", &format!("/vms/m/migrate?node={target}"), None);
        let moved = stack.wait_state_on("m", &target, "running", Duration::from_secs(120));
        total.push(ms(started));
        let record = &moved["status"]["last_migration"];
        assert_eq!(record["succeeded"], true, "{moved}");
        downtime.push(record["downtime_ms"].as_f64().unwrap_or(f64::NAN));
        // The source's QEMU gone before the next move.
        stack.wait_for("one QEMU", Duration::from_secs(30), |_| common::qemu_processes(&uid).len() == 1);
        node = target;
    }
    record(serde_json::json!({"measure": "migration_downtime_ms", "values": downtime}));
    record(serde_json::json!({"measure": "migration_total_ms", "values": total}));
}
