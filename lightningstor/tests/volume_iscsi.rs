//! Volumes over iSCSI: real chainfire, flaredb, IAM and lightningstor-server processes, libiscsi's
//! tools and conformance suite and QEMU's iSCSI driver against a volume's target, logging in with
//! an attachment's CHAP credentials from the initiator it names.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::Stack;
use serde_json::json;

const MIB: u64 = 1 << 20;
const INITIATOR: &str = "iqn.2026-12.test.photoncloud:hv1";

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

struct Rig {
    stack: Stack,
    tenant: String,
}

impl Rig {
    fn api(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let body = body.to_string();
        let (status, json) = self.stack.storage.project_call(("acme", "web"), method, path, Some(&body), &self.tenant);
        assert!((200..300).contains(&status), "{method} {path}: {status} {json}");
        json
    }

    /// A volume and an attachment for `INITIATOR`: the LUN's URL with its CHAP credentials.
    fn volume(&self, name: &str, size: u64) -> (String, String) {
        self.api("POST", "/volumes", json!({"name": name, "spec": {"size_bytes": size, "replicas": 1}}));
        let made = self.api(
            "POST",
            &format!("/volumes/{name}/attachments"),
            json!({"name": "hv1", "spec": {"host": "hv1", "initiator": INITIATOR}}),
        );
        let token = made["spec"]["token"].as_str().unwrap().to_string();
        let iqn = format!("iqn.2026-12.io.photoncloud:acme.web.{name}");
        (format!("iscsi://hv1%{token}@{}/{iqn}/0", self.stack.iscsi), token)
    }
}

#[tokio::test]
async fn a_volume_is_an_iscsi_lun_behind_chap_that_qemu_writes_and_libiscsi_finds_conformant() {
    let stack = Stack::start(&[]).await;
    let tenant = stack.env.member_token(&stack.root, "acme", "vols", "member").await;
    let rig = Rig { stack, tenant };
    let (url, token) = rig.volume("disk", 64 * MIB);
    let iqn = "iqn.2026-12.io.photoncloud:acme.web.disk";

    // The initiator the attachment names finds the target, logs in with CHAP, sees the LUN.
    let (ok, out) = run("iscsi-ls", &["-i", INITIATOR, "-s", &format!("iscsi://hv1%{token}@{}", rig.stack.iscsi)]);
    assert!(ok && out.contains(iqn) && out.contains("Lun:0"), "discovery: {out}");
    let (ok, out) = run("iscsi-readcapacity16", &["-i", INITIATOR, &url]);
    assert!(ok && out.contains(&format!("ADDRESS:{}", 64 * MIB / 512 - 1)), "capacity in 512-byte blocks: {out}");
    let plain = format!("iscsi://{}/{iqn}/0", rig.stack.iscsi);
    let (ok, out) = run("iscsi-inq", &["-i", INITIATOR, &plain]);
    assert!(!ok, "no CHAP, no login: {out}");
    let (ok, out) = run("iscsi-inq", &["-i", "iqn.2026-12.test.photoncloud:stranger", &url]);
    assert!(!ok, "an initiator no attachment names: {out}");

    // QEMU writes through its iSCSI driver and reads back.
    let (host, port) = rig.stack.iscsi.split_once(':').unwrap();
    let opts = format!(
        "driver=iscsi,transport=tcp,portal={host}:{port},target={iqn},lun=0,user=hv1,password={token},initiator-name={INITIATOR}"
    );
    let (ok, out) = run("qemu-io", &["--image-opts", &opts, "-c", "write -P 0x5a 0 3M", "-c", "flush", "-c", "read -P 0x5a 4096 1M"]);
    assert!(ok && !out.contains("failed") && !out.contains("Pattern verification"), "qemu-io over iSCSI: {out}");

    // libiscsi's conformance suite against a second volume: the SBC and SPC families, less those
    // photon-block's skip list excludes and those that need a second initiator (one host writes
    // a volume at a time: a second initiator is a second attachment, refused while the first
    // holds the volume; photon-block runs them against a reference device).
    let (suite_url, _) = rig.volume("suite", 64 * MIB);
    let skipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/photon-block/tests/iscsi_skipped.txt")).unwrap();
    let excluded: BTreeSet<&str> =
        skipped.lines().filter_map(|l| l.strip_prefix("exclude ")).filter_map(|l| l.split_whitespace().next()).collect();
    let (_, listed) = run("iscsi-test-cu", &["--list"]);
    let tests: Vec<&str> = listed
        .lines()
        .filter(|n| (n.starts_with("SCSI.") || n.starts_with("iSCSI.")) && n.matches('.').count() == 2)
        .filter(|n| !excluded.contains(n))
        .filter(|n| !n.starts_with("SCSI.MultipathIO.") && !n.starts_with("SCSI.Prout") && !n.starts_with("SCSI.Prin"))
        .filter(|n| !["SCSI.Reserve6.2Initiators", "SCSI.Reserve6.Logout", "SCSI.Reserve6.ITNexusLoss"].contains(n))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("tests.txt");
    std::fs::write(&list, tests.join("\n") + "\n").unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(900),
        tokio::process::Command::new("iscsi-test-cu")
            .args(["--dataloss", "-n", "-i", INITIATOR, "-t", list.to_str().unwrap(), &suite_url])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the suite finishes")
    .unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let row = output.lines().find(|l| l.trim_start().starts_with("tests ")).unwrap_or_else(|| panic!("{output}"));
    let n: Vec<usize> = row.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    eprintln!("iscsi-test-cu against a volume: {row}");
    assert_eq!(n[3], 0, "failures:\n{output}");
    assert_eq!((n[1], n[2]), (tests.len(), tests.len()), "every listed test ran and passed:\n{output}");
}
