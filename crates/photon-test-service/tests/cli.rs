//! The binary's command line: help, printed config, and refusing bad configuration.

use std::process::Command;

use photon_testkit::binary;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(binary("photon-test-service")).args(args).envs(env.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn help_documents_flags_and_every_config_key() {
    let (code, stdout, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for needle in [
        "--listen",
        "--data-dir",
        "--config",
        "--insecure",
        "server.listen = \"127.0.0.1:7999\"",
        "PHOTON_TEST_LOG_LEVEL",
        "test.health",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from --help:\n{stdout}");
    }
}

#[test]
fn print_config_shows_the_merged_result() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(&file, "[test]\nname = \"from-file\"\n[log]\nlevel = \"warn\"\n").unwrap();
    let (code, stdout, stderr) = run(
        &["--config", file.to_str().unwrap(), "--log-level", "debug", "--print-config"],
        &[("PHOTON_TEST_LOG_LEVEL", "error"), ("PHOTON_TEST_TEST_CRASH_AFTER_MS", "7")],
    );
    assert_eq!(code, 0, "{stderr}");
    let parsed: serde_json::Value = serde_json::to_value(toml_lines(&stdout)).unwrap();
    assert_eq!(parsed["name"], "from-file");
    assert_eq!(parsed["level"], "debug", "the flag beats env and file");
    assert_eq!(parsed["crash_after_ms"], "7", "env beats the default");
}

/// A flat key → value view of simple TOML output, enough for these assertions.
fn toml_lines(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

#[test]
fn bad_configuration_exits_2_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nshutdown_timeout_secs = \"soon\"\n").unwrap();
    let (code, _, stderr) = run(&["--config", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("server.shutdown_timeout_secs") && stderr.contains("bad.toml"), "{stderr}");

    std::fs::write(&bad, "[tls]\ncertificate = \"x.pem\"\n").unwrap();
    let (code, _, stderr) = run(&["--config", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown key `tls.certificate`"), "{stderr}");

    let (code, _, stderr) = run(&[], &[("PHOTON_TEST_CONFIG", "/nonexistent/x.toml")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/x.toml"), "{stderr}");
}

#[test]
fn production_without_certificates_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) =
        run(&["--mode", "production", "--data-dir", dir.path().to_str().unwrap(), "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("production mode needs tls.cert and tls.key"), "{stderr}");
}
