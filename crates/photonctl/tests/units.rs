//! The systemd units in baremetal/systemd: `systemd-analyze verify` is clean on every one (with
//! their ExecStart pointed at the binaries just built), `systemd-analyze security` rates every
//! service "OK" or better, and the dependency edges are PLATFORM.md's start order.

use std::path::{Path, PathBuf};
use std::process::Command;

use photon_testkit::binary;

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../baremetal/systemd")
}

fn units() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> = std::fs::read_dir(units_dir())
        .expect("baremetal/systemd")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "service" || e == "target"))
        .collect();
    units.sort();
    units
}

/// The units copied to `dir` with /usr/local/bin replaced by the build's binaries.
fn installed_copies(dir: &Path) -> Vec<PathBuf> {
    let bin = binary("photonctl").parent().expect("binary dir").to_path_buf();
    units()
        .iter()
        .map(|unit| {
            let text = std::fs::read_to_string(unit).expect("unit");
            let copy = dir.join(unit.file_name().expect("name"));
            std::fs::write(&copy, text.replace("/usr/local/bin/", &format!("{}/", bin.display()))).expect("write");
            copy
        })
        .collect()
}

fn directive(unit: &str, key: &str) -> Vec<String> {
    let text = std::fs::read_to_string(units_dir().join(unit)).expect("unit");
    text.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[test]
fn every_unit_verifies_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let copies = installed_copies(dir.path());
    assert!(copies.len() >= 9, "units: {copies:?}");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&copies)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

#[test]
fn every_service_rates_ok_or_better() {
    let dir = tempfile::tempdir().unwrap();
    for copy in installed_copies(dir.path()).iter().filter(|p| p.extension().is_some_and(|e| e == "service")) {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(copy)
            .current_dir(dir.path())
            .output()
            .expect("systemd-analyze");
        let text = String::from_utf8_lossy(&out.stdout);
        let overall = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_default().to_string();
        let rating =
            overall.split_whitespace().rev().find(|w| w.chars().all(|c| c.is_ascii_uppercase()) && !w.is_empty());
        assert!(
            matches!(rating, Some("SAFE") | Some("OK")),
            "{}: {overall} ({})",
            copy.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn dependencies_follow_the_start_order() {
    assert!(directive("chainfire.service", "After").contains(&"network-online.target".to_string()));
    assert!(directive("chainfire.service", "Requires").is_empty());
    assert_eq!(directive("flaredb.service", "Requires"), ["chainfire.service"]);
    assert!(directive("flaredb.service", "After").contains(&"chainfire.service".to_string()));
    assert_eq!(directive("iam.service", "Requires"), ["flaredb.service"]);
    assert!(directive("iam.service", "After").contains(&"flaredb.service".to_string()));
    // The application tier only Wants chainfire: it starts degraded rather than not at all.
    assert!(directive("lightningstor.service", "Requires").is_empty());
    assert!(directive("lightningstor.service", "Wants").contains(&"chainfire.service".to_string()));
    assert!(directive("flashdns.service", "Requires").is_empty());
    assert!(directive("flashdns.service", "Wants").contains(&"chainfire.service".to_string()));
    assert!(directive("fiberlb.service", "Requires").is_empty());
    assert!(directive("fiberlb.service", "Wants").contains(&"chainfire.service".to_string()));
    assert!(directive("fiberlb.service", "After").contains(&"iam.service".to_string()));
    assert!(directive("prismnet.service", "Requires").is_empty());
    assert!(directive("prismnet.service", "Wants").contains(&"chainfire.service".to_string()));
    assert!(directive("prismnet.service", "After").contains(&"iam.service".to_string()));
    assert!(directive("plasmavmc.service", "Requires").is_empty());
    assert!(directive("plasmavmc.service", "Wants").contains(&"chainfire.service".to_string()));
    assert!(directive("plasmavmc.service", "Wants").contains(&"iam.service".to_string()));
    // Guests outlive a restart of their agent.
    assert_eq!(directive("plasmavmc.service", "KillMode"), ["process"]);
    // photoncloud.target starts every service that has a unit.
    let wanted = directive("photoncloud.target", "Wants");
    for service in ["chainfire", "flaredb", "iam", "lightningstor", "flashdns", "fiberlb", "prismnet", "plasmavmc"] {
        assert!(wanted.contains(&format!("{service}.service")), "photoncloud.target must want {service}.service");
    }
    for service in ["chainfire", "flaredb", "iam", "lightningstor", "flashdns", "fiberlb", "prismnet", "plasmavmc"] {
        let unit = format!("{service}.service");
        assert_eq!(directive(&unit, "Type"), ["notify"], "{unit}");
        assert_eq!(directive(&unit, "Restart"), ["on-failure"], "{unit}");
        assert!(!directive(&unit, "WatchdogSec").is_empty(), "{unit}");
        assert_eq!(directive(&unit, "StateDirectory"), [service], "{unit}");
        assert!(directive(&unit, "LoadCredential").iter().any(|c| c.starts_with("node.key:")), "{unit}");
    }
    // First boot, in order, each once.
    let order = ["chainfire-cluster-join", "flaredb-cluster-join", "iam-initial-setup", "cluster-health-check"];
    for pair in order.windows(2) {
        let after = directive(&format!("{}.service", pair[1]), "After");
        assert!(after.contains(&format!("{}.service", pair[0])), "{} must run after {}", pair[1], pair[0]);
    }
    for step in order {
        let condition = directive(&format!("{step}.service"), "ConditionPathExists");
        assert!(condition.iter().any(|c| c.starts_with("!/var/lib/photoncloud/firstboot/")), "{step}: {condition:?}");
    }
}
