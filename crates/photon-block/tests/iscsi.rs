//! The iSCSI target against real initiators (libiscsi's iscsi-ls, iscsi-inq,
//! iscsi-readcapacity16 and its conformance suite iscsi-test-cu; QEMU's iSCSI driver through
//! qemu-io and qemu-img; install them with scripts/setup), with CHAP, read-only devices and
//! refused logins, and against a raw initiator sending malformed and random PDUs.

#[allow(dead_code)]
#[path = "support/iscsi_corpus.rs"]
mod corpus;
#[allow(dead_code)]
#[path = "support/iscsi_raw.rs"]
mod iscsi_raw;
#[allow(dead_code)]
mod support;
#[path = "support/iscsi.rs"]
mod target;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use iscsi_raw::*;
use photon_block::iscsi::{Access, Liveness, StaticTargets, Targets};
use photon_block::{BlockDevice, BlockError, BlockFuture, MemDevice};
use support::{content, fill, random_bytes, run, run_ok, send_session};
use target::{chap, login_failed, Target, INITIATOR, INITIATOR_2, TARGET};

const MIB: usize = 1 << 20;

fn device(size: usize) -> Arc<MemDevice> {
    Arc::new(MemDevice::new(size as u64))
}

fn said(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_inquiry_and_capacity_with_libiscsi_tools() {
    let vol = device(64 * MIB);
    let other = device(MIB);
    let targets = StaticTargets::new()
        .with(TARGET, vol.clone() as Arc<dyn BlockDevice>)
        .with("iqn.2026-12.io.photoncloud:other", other as Arc<dyn BlockDevice>);
    let server = Target::start(targets).await;

    let listed = run_ok("iscsi-ls", &["-i", INITIATOR, "-s", &server.portal()]).await;
    assert!(listed.contains(&format!("Target:{TARGET} Portal:127.0.0.1:{},1", server.port())), "{listed}");
    assert!(listed.contains("Target:iqn.2026-12.io.photoncloud:other"), "{listed}");
    assert!(listed.contains("Lun:0    Type:DIRECT_ACCESS"), "{listed}");

    let url = server.url(TARGET, 0);
    let inq = run_ok("iscsi-inq", &["-i", INITIATOR, &url]).await;
    assert!(inq.contains("Vendor:PHOTON") || inq.contains("PHOTON"), "{inq}");
    assert!(inq.contains("LightningStor"), "{inq}");
    let ids = run_ok("iscsi-inq", &["-i", INITIATOR, "-e", "1", "-c", "131", &url]).await;
    assert!(ids.contains(&format!("Designator:[{TARGET}]")), "{ids}");
    assert!(ids.contains("Designator Type:(3) NAA"), "{ids}");
    let limits = run_ok("iscsi-inq", &["-i", INITIATOR, "-e", "1", "-c", "176", &url]).await;
    assert!(limits.contains("optimal transfer length granularity:8"), "{limits}");
    assert!(limits.contains("maximum unmap lba count:1048576"), "{limits}");
    let provisioning = run_ok("iscsi-inq", &["-i", INITIATOR, "-e", "1", "-c", "178", &url]).await;
    assert!(provisioning.contains("lbpu:1") && provisioning.contains("lbprz:1"), "{provisioning}");

    let cap = run_ok("iscsi-readcapacity16", &["-i", INITIATOR, &url]).await;
    assert!(cap.contains(&format!("RETURNED LOGICAL BLOCK ADDRESS:{}", 64 * MIB / 512 - 1)), "{cap}");
    assert!(cap.contains("LOGICAL BLOCK LENGTH IN BYTES:512"), "{cap}");
    assert!(cap.contains("LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT:3"), "{cap}");
    assert!(cap.contains("LBPME:1 LBPRZ:1"), "{cap}");
    assert!(cap.contains(&format!("Total size:{}", 64 * MIB)), "{cap}");

    let missing = run("iscsi-inq", &["-i", INITIATOR, &server.url("iqn.2026-12.io.photoncloud:nope", 0)]).await;
    assert!(said(&missing).contains("Target not found"), "{}", said(&missing));
    // Any LUN but 0 does not exist.
    let lun1 = run("iscsi-readcapacity16", &["-i", INITIATOR, &server.url(TARGET, 1)]).await;
    assert!(!lun1.status.success(), "{}", said(&lun1));
    server.stop().await;
}

/// The tests of iscsi-test-cu's SCSI and iSCSI families, minus those excluded in
/// tests/iscsi_skipped.txt (each with its reason).
async fn conformance_tests() -> Vec<String> {
    let skipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/iscsi_skipped.txt")).unwrap();
    let excluded: BTreeSet<&str> = skipped
        .lines()
        .filter_map(|l| l.strip_prefix("exclude "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let listed = run_ok("iscsi-test-cu", &["--list"]).await;
    let tests: Vec<String> = listed
        .lines()
        .filter(|name| name.starts_with("SCSI.") || name.starts_with("iSCSI."))
        .filter(|name| name.matches('.').count() == 2)
        .filter(|name| !excluded.contains(name))
        .map(str::to_string)
        .collect();
    for name in &excluded {
        assert!(listed.lines().any(|l| l == *name), "{name} is excluded but iscsi-test-cu has no such test");
    }
    tests
}

/// The "tests" row of CUnit's run summary: (ran, passed, failed).
fn cunit_tests(output: &str) -> (usize, usize, usize) {
    let row = output.lines().find(|l| l.trim_start().starts_with("tests ")).unwrap_or_else(|| panic!("{output}"));
    let n: Vec<usize> = row.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    (n[1], n[2], n[3])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libiscsi_conformance_suite_passes() {
    let vol = device(64 * MIB);
    let server = Target::single(&vol).await;
    let tests = conformance_tests().await;
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("tests.txt");
    std::fs::write(&list, tests.join("\n") + "\n").unwrap();
    let url = server.url(TARGET, 0);
    // The URL twice: the multipath tests log in over both "paths".
    let args = ["--dataloss", "-n", "-i", INITIATOR, "-I", INITIATOR_2, "-t", list.to_str().unwrap(), &url, &url];
    let mut cmd = tokio::process::Command::new("iscsi-test-cu");
    cmd.args(args).kill_on_drop(true).stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output()).await.expect("the suite finishes").unwrap();
    let output = said(&out);
    eprintln!("{output}");
    let (ran, passed, failed) = cunit_tests(&output);
    assert_eq!(failed, 0, "iscsi-test-cu failures:\n{output}");
    assert_eq!((ran, passed), (tests.len(), tests.len()), "every listed test ran and passed");
    assert!(output.contains("Tests completed with return value: 0"), "{output}");
    assert_eq!(target::panics(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_io_and_qemu_img_round_trip_byte_for_byte() {
    let vol = device(8 * MIB);
    let server = Target::single(&vol).await;
    let url = server.url(TARGET, 0);
    let out = run_ok(
        "qemu-io",
        &[
            "-f",
            "raw",
            &url,
            "-c",
            "write -P 0xab 0 1M",
            "-c",
            "read -P 0xab 0 1M",
            "-c",
            "flush",
            "-c",
            "write -z 1M 64k",
            "-c",
            "discard 2M 64k",
            "-c",
            "aio_write -P 0x22 4M 64k",
            "-c",
            "aio_write -P 0x33 5M 1M",
            "-c",
            "aio_flush",
            "-c",
            "read -P 0x22 4M 64k",
            "-c",
            "read -P 0x33 5M 1M",
        ],
    )
    .await;
    assert!(!out.contains("Pattern verification failed") && !out.contains("failed"), "{out}");
    let bytes = content(&vol).await;
    assert!(bytes[..MIB].iter().all(|&b| b == 0xab));
    assert!(bytes[5 * MIB..6 * MIB].iter().all(|&b| b == 0x33));

    let dir = tempfile::tempdir().unwrap();
    let mut data = random_bytes(7, 8 * MIB);
    data[2 * MIB..3 * MIB].fill(0);
    let src = dir.path().join("src.raw");
    std::fs::write(&src, &data).unwrap();
    run_ok("qemu-img", &["convert", "-n", "-f", "raw", "-O", "raw", src.to_str().unwrap(), &url]).await;
    assert!(content(&vol).await == data, "qemu-img wrote the file into the LUN");
    let back = dir.path().join("back.raw");
    run_ok("qemu-img", &["convert", "-f", "raw", "-O", "raw", &url, back.to_str().unwrap()]).await;
    assert!(std::fs::read(&back).unwrap() == data, "qemu-img read the LUN back");

    // Header digests, which libiscsi offers through QEMU's options.
    let opts = format!(
        "driver=iscsi,transport=tcp,portal=127.0.0.1:{},target={TARGET},lun=0,header-digest=crc32c,initiator-name={INITIATOR}",
        server.port()
    );
    let out =
        run_ok("qemu-io", &["--image-opts", &opts, "-c", "write -P 0x5c 0 256k", "-c", "read -P 0x5c 0 256k"]).await;
    assert!(!out.contains("failed"), "{out}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chap_requires_the_right_user_and_secret() {
    let vol = device(4 * MIB);
    let targets =
        StaticTargets::new().with_access(TARGET, vol.clone() as Arc<dyn BlockDevice>, chap("alice", "wonderland12"));
    let server = Target::start(targets).await;
    for (user, secret) in [(None, None), (Some("alice"), Some("wrong-secret")), (Some("bob"), Some("wonderland12"))] {
        let url = match (user, secret) {
            (Some(u), Some(s)) => server.chap_url(u, s, TARGET),
            _ => server.url(TARGET, 0),
        };
        let out = run("iscsi-inq", &["-i", INITIATOR, &url]).await;
        assert!(login_failed(&out), "{user:?}: {}", said(&out));
        assert!(said(&out).contains("Authentication failure"), "{}", said(&out));
    }
    let url = server.chap_url("alice", "wonderland12", TARGET);
    let inq = run_ok("iscsi-inq", &["-i", INITIATOR, &url]).await;
    assert!(inq.contains("DIRECT_ACCESS"), "{inq}");
    let out = run_ok("qemu-io", &["-f", "raw", &url, "-c", "write -P 0x42 0 64k", "-c", "read -P 0x42 0 64k"]).await;
    assert!(!out.contains("failed"), "{out}");
    assert!(content(&vol).await[..65536].iter().all(|&b| b == 0x42));

    // A raw login skipping security negotiation is refused, as is a replayed response.
    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(raw.login(Some(TARGET), &[]).await.0, 0x0201);
    assert!(raw.closed_within(Duration::from_secs(5)).await);
    let mut raw = Raw::connect(server.addr).await;
    let first = keys(&[("InitiatorName", INITIATOR), ("TargetName", TARGET), ("AuthMethod", "CHAP")]);
    raw.send(&pdu(login_header(0x81, 0, 1, 1), &first)).await;
    let reply = raw.read().await.unwrap();
    assert!(String::from_utf8_lossy(&reply.data).contains("AuthMethod=CHAP"));
    raw.send(&pdu(login_header(0x01, 0, 1, 1), &keys(&[("CHAP_A", "5")]))).await;
    let challenge = String::from_utf8_lossy(&raw.read().await.unwrap().data).to_string();
    assert!(challenge.contains("CHAP_C=0x"), "{challenge}");
    raw.send(&pdu(
        login_header(0x81, 0, 1, 1),
        &keys(&[("CHAP_N", "alice"), ("CHAP_R", "0x00112233445566778899aabbccddeeff")]),
    ))
    .await;
    let refused = raw.read().await.unwrap();
    assert_eq!((refused.bhs[36], refused.bhs[37]), (2, 1), "a wrong response fails authentication");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_target_refuses_writes_with_data_protect() {
    let ro = Arc::new(MemDevice::read_only(16 * MIB as u64));
    let server = Target::single(&ro).await;
    let url = server.url(TARGET, 0);
    let out = run_ok("qemu-io", &["-r", "-f", "raw", &url, "-c", "read -P 0 0 1M"]).await;
    assert!(out.contains("read 1048576/1048576 bytes"), "{out}");
    let write = run("qemu-io", &["-f", "raw", &url, "-c", "write -P 0xab 0 4k"]).await;
    assert!(!said(&write).contains("wrote "), "{}", said(&write));

    // libiscsi's read-only family (and the read families) against the read-only LUN.
    let tests = "SCSI.ReadOnly,SCSI.Read10,SCSI.Read16,SCSI.ModeSense6";
    let out = run("iscsi-test-cu", &["--dataloss", "-n", "-i", INITIATOR, "-t", tests, &url]).await;
    let output = said(&out);
    let (ran, passed, failed) = cunit_tests(&output);
    assert_eq!(failed, 0, "{output}");
    assert!(ran >= 13 && ran == passed, "{output}");
    assert!(!output.contains("Logical unit is not write-protected"), "the read-only tests ran: {output}");

    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(raw.login(Some(TARGET), &[]).await.0, 0);
    let answer = raw.command(&write10(0, 1), 512, false, &[0xab; 512]).await;
    assert_eq!((answer.status, answer.key()), (2, (0x7, 0x27, 0x00)), "DATA PROTECT / WRITE PROTECTED");
    let answer = raw.command(&[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], 24, false, &[0; 24]).await;
    assert_eq!(answer.key().0, 0x7, "UNMAP too");
    let answer = raw.command(&read10(0, 8), 4096, true, &[]).await;
    assert_eq!((answer.status, answer.data.len()), (0, 4096));
    assert!(content(&ro).await.iter().all(|&b| b == 0));
    server.stop().await;
}

/// Targets whose logins go wrong in each of the ways `Targets` can say.
struct Troubled;

impl Targets for Troubled {
    fn discover(&self, _initiator: &str) -> BlockFuture<'_, Vec<String>> {
        Box::pin(async { Err(BlockError::Io("the volume list is unreachable".into())) })
    }

    fn access(&self, target: &str, _initiator: &str) -> BlockFuture<'_, Option<Access>> {
        let found = match target.rsplit(':').next() {
            Some("broken") => Err(BlockError::Io("lookup failed".into())),
            Some("gone" | "busy" | "fine") => Ok(Some(Access::default())),
            _ => Ok(None),
        };
        Box::pin(async move { found })
    }

    fn open(&self, target: &str, _initiator: &str) -> BlockFuture<'_, Option<Arc<dyn BlockDevice>>> {
        let opened: Result<Option<Arc<dyn BlockDevice>>, BlockError> = match target.rsplit(':').next() {
            Some("gone") => Ok(None),
            Some("busy") => Err(BlockError::Io("another host holds the volume".into())),
            _ => Ok(Some(Arc::new(MemDevice::new(MIB as u64)))),
        };
        Box::pin(async move { opened })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_get_a_login_status() {
    let server = Target::start(Troubled).await;
    let cases = [
        ("nope", 0x0203, "Target not found"),
        ("broken", 0x0301, "Service unavailable"),
        ("gone", 0x0204, "Target removed"),
        ("busy", 0x0301, "Service unavailable"),
    ];
    for (name, status, words) in cases {
        let target = format!("iqn.2026-12.io.photoncloud:{name}");
        let out = run("iscsi-inq", &["-i", INITIATOR, &server.url(&target, 0)]).await;
        assert!(said(&out).contains(words), "{name}: {}", said(&out));
        let mut raw = Raw::connect(server.addr).await;
        assert_eq!(raw.login(Some(&target), &[]).await.0, status, "{name}");
        assert!(raw.closed_within(Duration::from_secs(5)).await, "{name}");
    }
    run_ok("iscsi-inq", &["-i", INITIATOR, &server.url("iqn.2026-12.io.photoncloud:fine", 0)]).await;
    // A failing target list still answers discovery, with nothing in it.
    let listed = run("iscsi-ls", &["-i", INITIATOR, &server.portal()]).await;
    assert!(!said(&listed).contains("Target:"), "{}", said(&listed));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_commands_get_residuals_sense_and_r2t_bursts() {
    let vol = device(4 * MIB);
    let server = Target::single(&vol).await;
    let mut raw = Raw::connect(server.addr).await;
    let (status, keys) =
        raw.login(Some(TARGET), &[("MaxRecvDataSegmentLength", "4096"), ("MaxBurstLength", "8192")]).await;
    assert_eq!(status, 0);
    assert!(keys.contains(&("TargetPortalGroupTag".into(), "1".into())), "{keys:?}");

    // A 40 KiB write: 4 KiB immediate, the rest in R2T bursts of 8 KiB.
    let data = random_bytes(3, 40 * 1024);
    let answer = raw.command(&write10(8, 80), 40 * 1024, false, &data).await;
    assert_eq!((answer.status, answer.residual), (0, (0, 0)));
    assert!(content(&vol).await[4096..4096 + 40 * 1024] == data[..]);
    // Read back, split by the 4 KiB the raw initiator accepts.
    let answer = raw.command(&read10(8, 80), 40 * 1024, true, &[]).await;
    assert_eq!(answer.status, 0);
    assert!(answer.data == data);
    // More expected than the command moves: underflow; less: overflow.
    let answer = raw.command(&read10(0, 1), 10_000, true, &[]).await;
    assert_eq!((answer.data.len(), answer.residual), (512, (0x02, 10_000 - 512)));
    let answer = raw.command(&read10(0, 2), 512, true, &[]).await;
    assert_eq!((answer.data.len(), answer.residual), (512, (0x04, 512)));
    // Errors come as fixed-format sense.
    let answer = raw.command(&read10(u32::MAX, 1), 512, true, &[]).await;
    assert_eq!((answer.status, answer.key()), (2, (0x5, 0x21, 0x00)), "LBA OUT OF RANGE");
    let answer = raw.command(&[0xc8, 0, 0, 0, 0, 0], 0, false, &[]).await;
    assert_eq!(answer.key(), (0x5, 0x20, 0x00), "INVALID COMMAND OPERATION CODE");
    let answer = raw.command(&[0x12, 0, 0x80, 0, 0xff, 0], 255, true, &[]).await;
    assert_eq!(answer.key(), (0x5, 0x24, 0x00), "INVALID FIELD IN CDB");
    // Another LUN: INQUIRY says nothing is there, other commands fail.
    let mut h = command_header(FINAL | READ, raw.itt, 96, raw.cmd_sn, &[0x12, 0, 0, 0, 96, 0]);
    h[9] = 3;
    raw.itt += 1;
    raw.cmd_sn += 1;
    raw.send(&pdu(h, &[])).await;
    let reply = raw.read().await.unwrap();
    assert_eq!((reply.opcode(), reply.data[0]), (DATA_IN, 0x7f));

    // A NOP-Out ping is echoed.
    let mut h = [0u8; 48];
    h[0] = NOP_OUT | IMMEDIATE;
    h[1] = FINAL;
    put32(&mut h, 16, 0x4242);
    put32(&mut h, 20, RESERVED);
    put32(&mut h, 24, raw.cmd_sn);
    raw.send(&pdu(h, b"ping")).await;
    let pong = raw.read().await.unwrap();
    assert_eq!((pong.opcode(), get32(&pong.bhs, 16), &pong.data[..]), (NOP_IN, 0x4242, &b"ping"[..]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_window_bounds_commands_in_flight() {
    let vol = device(4 * MIB);
    let server = Target::single(&vol).await;
    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(raw.login(Some(TARGET), &[]).await.0, 0);
    // 32 writes waiting for their data fill the window (each gets an R2T)...
    let mut burst = Vec::new();
    for i in 0..32u32 {
        burst.extend(pdu(command_header(FINAL | WRITE, 100 + i, 512, 1 + i, &write10(i, 1)), &[]));
    }
    raw.send(&burst).await;
    let mut solicited = Vec::new();
    for _ in 0..32 {
        let r2t = raw.read().await.unwrap();
        assert_eq!(r2t.opcode(), R2T);
        solicited.push((get32(&r2t.bhs, 16), get32(&r2t.bhs, 20)));
    }
    let (exp, max) = {
        let last = raw.read_timeout(Duration::from_millis(200)).await;
        assert!(last.is_none(), "nothing more until data comes: {last:?}");
        (33, 32)
    };
    // ...so a 33rd command is past MaxCmdSN and ignored: the ping after it is answered first.
    raw.send(&pdu(command_header(FINAL | READ, 200, 512, exp, &read10(0, 1)), &[])).await;
    let mut ping = [0u8; 48];
    ping[0] = NOP_OUT | IMMEDIATE;
    ping[1] = FINAL;
    put32(&mut ping, 16, 0x77);
    put32(&mut ping, 20, RESERVED);
    put32(&mut ping, 24, exp);
    raw.send(&pdu(ping, &[])).await;
    let pong = raw.read().await.unwrap();
    assert_eq!((pong.opcode(), get32(&pong.bhs, 16)), (NOP_IN, 0x77), "the read was ignored");
    assert_eq!((get32(&pong.bhs, 28), get32(&pong.bhs, 32)), (exp, max), "a closed window: MaxCmdSN = ExpCmdSN - 1");
    // Completing one write reopens one slot.
    let (itt, ttt) = solicited[0];
    raw.send(&data_out(itt, ttt, 0, 0, true, &[0x99; 512])).await;
    let done = raw.read().await.unwrap();
    assert_eq!((done.opcode(), get32(&done.bhs, 16), done.bhs[3]), (SCSI_RESP, itt, 0));
    assert_eq!(get32(&done.bhs, 32), max + 1);
    let lba = (itt - 100) as usize;
    assert!(content(&vol).await[lba * 512..(lba + 1) * 512].iter().all(|&b| b == 0x99));
    raw.cmd_sn = exp;
    raw.itt = 300;
    let answer = raw.command(&read10(lba as u32, 1), 512, true, &[]).await;
    assert_eq!((answer.status, answer.data[0]), (0, 0x99));
    server.stop().await;
}

fn tmf(function: u8, itt: u32, referenced: u32, cmd_sn: u32) -> Vec<u8> {
    let mut h = [0u8; 48];
    h[0] = TMF_REQ | IMMEDIATE;
    h[1] = FINAL | function;
    put32(&mut h, 16, itt);
    put32(&mut h, 20, referenced);
    put32(&mut h, 24, cmd_sn);
    pdu(h, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_management_aborts_and_resets() {
    let vol = device(4 * MIB);
    let server = Target::single(&vol).await;
    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(raw.login(Some(TARGET), &[]).await.0, 0);
    // A write waiting for its data is aborted: answered "complete", its data never lands.
    raw.send(&pdu(command_header(FINAL | WRITE, 10, 4096, 1, &write10(0, 8)), &[])).await;
    let r2t = raw.read().await.unwrap();
    assert_eq!(r2t.opcode(), R2T);
    raw.send(&tmf(1, 11, 10, 2)).await;
    let answer = raw.read().await.unwrap();
    assert_eq!((answer.opcode(), get32(&answer.bhs, 16), answer.bhs[2]), (TMF_RESP, 11, 0));
    raw.send(&data_out(10, get32(&r2t.bhs, 20), 0, 0, true, &[0xaa; 4096])).await;
    // Nothing is there to abort any more.
    raw.send(&tmf(1, 12, 10, 2)).await;
    let answer = raw.read().await.unwrap();
    assert_eq!((get32(&answer.bhs, 16), answer.bhs[2]), (12, 1), "task does not exist");
    assert!(content(&vol).await.iter().all(|&b| b == 0), "the aborted write changed nothing");
    // The window slot of the aborted write was given back: the next command is CmdSN 2.
    raw.cmd_sn = 2;
    raw.itt = 20;
    assert_eq!(raw.command(&read10(0, 1), 512, true, &[]).await.status, 0);

    // LUN RESET completes, and every nexus is told once by a unit attention.
    let mut other = Raw::connect(server.addr).await;
    other.isid[5] = 2;
    assert_eq!(other.login(Some(TARGET), &[]).await.0, 0);
    raw.send(&tmf(5, 30, RESERVED, raw.cmd_sn)).await;
    let answer = raw.read().await.unwrap();
    assert_eq!((answer.opcode(), answer.bhs[2]), (TMF_RESP, 0));
    let tur = raw.command(&[0; 6], 0, false, &[]).await;
    assert_eq!((tur.status, tur.key()), (2, (0x6, 0x29, 0x03)), "BUS DEVICE RESET FUNCTION OCCURRED");
    assert_eq!(raw.command(&[0; 6], 0, false, &[]).await.status, 0, "reported once");
    let sense = other.command(&[0x03, 0, 0, 0, 18, 0], 18, true, &[]).await;
    assert_eq!((sense.status, sense.data[2] & 0x0f, sense.data[12]), (0, 0x6, 0x29), "REQUEST SENSE reports it");
    assert_eq!(other.command(&[0; 6], 0, false, &[]).await.status, 0, "and clears it");
    // Target resets are not offered; other functions are refused.
    raw.send(&tmf(6, 40, RESERVED, raw.cmd_sn)).await;
    assert_eq!(raw.read().await.unwrap().bhs[2], 5, "not supported");
    raw.send(&tmf(0x33, 41, RESERVED, raw.cmd_sn)).await;
    assert_eq!(raw.read().await.unwrap().bhs[2], 255, "rejected");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_nexus_holds_no_reservation_once_answered() {
    // The second nexus is logged in already, so its RESERVE(6) follows the first one's logout
    // response within microseconds: any release left until after the answer loses the race.
    let vol = device(MIB);
    let server = Target::single(&vol).await;
    let mut second = Raw::connect(server.addr).await;
    second.isid[5] = 2;
    assert_eq!(second.login(Some(TARGET), &[]).await.0, 0);
    for round in 0..20u32 {
        let mut first = Raw::connect(server.addr).await;
        first.isid[5] = 100 + round as u8;
        assert_eq!(first.login(Some(TARGET), &[]).await.0, 0);
        assert_eq!(first.command(&[0x16, 0, 0, 0, 0, 0], 0, false, &[]).await.status, 0, "RESERVE(6)");
        let mut h = [0u8; 48];
        h[0] = LOGOUT_REQ | IMMEDIATE;
        h[1] = FINAL;
        put32(&mut h, 16, 0x1000 + round);
        put32(&mut h, 24, first.cmd_sn);
        first.send(&pdu(h, &[])).await;
        let bye = first.read().await.expect("a logout response");
        assert_eq!((bye.opcode(), bye.bhs[2]), (LOGOUT_RESP, 0));
        let reserve = second.command(&[0x16, 0, 0, 0, 0, 0], 0, false, &[]).await;
        assert_eq!(reserve.status, 0, "round {round}: the logged-out nexus still held the reservation");
        assert_eq!(second.command(&[0x17, 0, 0, 0, 0, 0], 0, false, &[]).await.status, 0, "RELEASE(6)");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_initiator_is_pinged_and_one_that_never_answers_is_let_go() {
    let vol = device(MIB);
    let liveness = Liveness { idle: Duration::from_millis(300), answer: Duration::from_millis(400) };
    let server = Target::start_with(StaticTargets::new().with(TARGET, vol.clone() as Arc<dyn BlockDevice>), liveness).await;
    // One that never answers is let go after its ping's time, its reservation with it.
    let mut gone = Raw::connect(server.addr).await;
    gone.isid[5] = 2;
    assert_eq!(gone.login(Some(TARGET), &[]).await.0, 0);
    assert_eq!(gone.command(&[0x16, 0, 0, 0, 0, 0], 0, false, &[]).await.status, 0, "RESERVE(6)");
    let ping = gone.read_timeout(Duration::from_secs(2)).await.expect("a ping");
    assert_eq!((ping.opcode(), get32(&ping.bhs, 16)), (NOP_IN, RESERVED), "an unsolicited NOP-In");
    assert_ne!(get32(&ping.bhs, 20), RESERVED, "one that asks for an answer");
    assert!(gone.read_timeout(Duration::from_secs(2)).await.is_none(), "closed after no answer");
    // One that answers every ping stays, well past idle + answer, and may reserve now.
    let mut alive = Raw::connect(server.addr).await;
    alive.isid[5] = 1;
    assert_eq!(alive.login(Some(TARGET), &[]).await.0, 0);
    let mut pings = 0;
    let until = std::time::Instant::now() + Duration::from_millis(1500);
    while std::time::Instant::now() < until {
        let Some(ping) = alive.read_timeout(Duration::from_millis(200)).await else { continue };
        assert_eq!(ping.opcode(), NOP_IN);
        let mut h = [0u8; 48];
        h[0] = NOP_OUT | IMMEDIATE;
        h[1] = FINAL;
        put32(&mut h, 16, RESERVED);
        put32(&mut h, 20, get32(&ping.bhs, 20));
        put32(&mut h, 24, alive.cmd_sn);
        alive.send(&pdu(h, &[])).await;
        pings += 1;
    }
    assert!(pings >= 2, "pinged while quiet: {pings}");
    assert_eq!(alive.command(&[0x16, 0, 0, 0, 0, 0], 0, false, &[]).await.status, 0, "the gone one's reservation went with it");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_data_digests_protect_every_pdu() {
    let vol = device(4 * MIB);
    let server = Target::single(&vol).await;
    let mut raw = Raw::connect(server.addr).await;
    let (status, keys) = raw.login(Some(TARGET), &[("HeaderDigest", "CRC32C,None"), ("DataDigest", "CRC32C")]).await;
    assert_eq!(status, 0);
    assert_eq!(raw.digests, (true, true), "{keys:?}");
    let data = random_bytes(5, 100_000);
    let answer =
        raw.command(&write10(0, 196), 196 * 512, false, &[&data[..], &[0; 196 * 512 - 100_000]].concat()).await;
    assert_eq!(answer.status, 0);
    let answer = raw.command(&read10(0, 196), 196 * 512, true, &[]).await;
    assert!(answer.data[..100_000] == data[..]);
    // A corrupt data digest ends the connection before the write reaches the device.
    let h = command_header(FINAL | WRITE, 99, 512, raw.cmd_sn, &write10(1000, 1));
    let mut bytes = raw.framed(h, &[0x66; 512]);
    let at = bytes.len() - 1;
    bytes[at] ^= 0xff;
    raw.send(&bytes).await;
    assert!(raw.closed_within(Duration::from_secs(5)).await);
    assert!(content(&vol).await[1000 * 512..1001 * 512].iter().all(|&b| b == 0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_sessions_and_serve_returns() {
    let vol = device(MIB);
    let server = Target::single(&vol).await;
    let mut idle = Raw::connect(server.addr).await;
    let mut busy = Raw::connect(server.addr).await;
    assert_eq!(busy.login(Some(TARGET), &[]).await.0, 0);
    assert_eq!(busy.command(&read10(0, 1), 512, true, &[]).await.status, 0);
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(3), "sessions ended promptly");
    assert!(idle.closed_within(Duration::from_secs(1)).await);
    assert!(busy.closed_within(Duration::from_secs(1)).await);
}

async fn robustness_target() -> (Target, Arc<MemDevice>, Arc<MemDevice>, Arc<MemDevice>) {
    let vol = device(MIB);
    for (i, byte) in [0x11u8, 0x22, 0x33, 0x44].iter().enumerate() {
        fill(&vol, (i * 256 * 1024) as u64, 128 * 1024, *byte).await;
    }
    let ro = Arc::new(MemDevice::read_only(MIB as u64));
    let scratch = device(MIB);
    let targets = StaticTargets::new()
        .with(corpus::VOL, vol.clone() as Arc<dyn BlockDevice>)
        .with(corpus::RO, ro.clone() as Arc<dyn BlockDevice>)
        .with_access(corpus::CHAP, scratch.clone() as Arc<dyn BlockDevice>, chap("u", "secret-secret"))
        .with(TARGET, scratch.clone() as Arc<dyn BlockDevice>);
    (Target::start(targets).await, vol, ro, scratch)
}

/// A well-behaved initiator still gets served: a raw write and read, and iscsi-inq.
async fn still_serving(server: &Target) {
    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(raw.login(Some(TARGET), &[]).await.0, 0);
    assert_eq!(raw.command(&write10(0, 1), 512, false, &[0x5a; 512]).await.status, 0);
    let answer = raw.command(&read10(0, 1), 512, true, &[]).await;
    assert!(answer.data == vec![0x5a; 512]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_pdus_change_nothing_and_break_nothing() {
    let (server, vol, ro, _) = robustness_target().await;
    let before = (content(&vol).await, content(&ro).await);
    for (what, bytes) in corpus::malformed((MIB / 512) as u32) {
        assert!(send_session(server.addr, &bytes).await, "the target did not close after: {what}");
        still_serving(&server).await;
        assert!(content(&vol).await == before.0, "{what} changed the device");
    }
    assert!((content(&vol).await, content(&ro).await) == before, "no malformed session changed a device");
    assert_eq!(target::panics(), 0);
    run_ok("iscsi-inq", &["-i", INITIATOR, &server.url(corpus::VOL, 0)]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_byte_streams_change_nothing_and_break_nothing() {
    let (server, vol, ro, _) = robustness_target().await;
    let before = (content(&vol).await, content(&ro).await);
    let sessions = photon_testkit::seeded::env_u64("ISCSI_RANDOM_SESSIONS", 400);
    let seed = photon_testkit::seeded::env_u64("ISCSI_RANDOM_SEED", 11);
    for i in 0..sessions {
        let bytes = corpus::random_session(seed + i);
        assert!(send_session(server.addr, &bytes).await, "seed {}: the target did not close", seed + i);
        if i % 50 == 0 {
            still_serving(&server).await;
        }
    }
    still_serving(&server).await;
    assert!((content(&vol).await, content(&ro).await) == before, "no random session changed a device");
    assert_eq!(target::panics(), 0);
    run_ok("iscsi-inq", &["-i", INITIATOR, &server.url(corpus::VOL, 0)]).await;
    server.stop().await;
}
