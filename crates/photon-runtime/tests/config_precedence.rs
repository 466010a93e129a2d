//! Config precedence (flag > env > file > default) and the errors for bad input.

use std::path::Path;

use photon_runtime::config::{config_help, load, Mode};
use photon_runtime::{
    CommonArgs, ConfigValue, LogSection, RuntimeError, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection,
};
use serde::{Deserialize, Serialize};

const SPEC: ServiceSpec = ServiceSpec { name: "demo", env_prefix: "DEMO", default_port: 4242, version: "0.0.0" };

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoConfig {
    server: ServerSection,
    log: LogSection,
    tls: TlsSection,
    demo: DemoSection,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoSection {
    label: String,
    replicas: u32,
}

impl ServiceConfig for DemoConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            demo: DemoSection { label: "none".into(), replicas: 3 },
        }
    }
    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("demo.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn error_text(result: Result<DemoConfig, RuntimeError>) -> String {
    result.expect_err("expected a configuration error").to_string()
}

#[test]
fn defaults_work_for_a_single_node_on_loopback() {
    let config: DemoConfig = load(&SPEC, None, &[], &[]).unwrap();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:4242");
    assert_eq!(config.server.data_dir, Path::new("./data/demo"));
    assert_eq!(config.server.mode, Mode::Development);
    assert_eq!(config.log.level, "info");
    assert!(config.tls.cert.is_none() && !config.tls.insecure);
    assert_eq!(config.demo.replicas, 3);
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "[server]\nshutdown_timeout_secs = 10\nlisten = \"127.0.0.1:1000\"\n[demo]\nreplicas = 5\nlabel = \"file\"\n[log]\nlevel = \"warn\"\n",
    );
    let env = env(&[
        ("DEMO_SERVER_SHUTDOWN_TIMEOUT_SECS", "20"),
        ("DEMO_SERVER_LISTEN", "127.0.0.1:2000"),
        ("DEMO_DEMO_LABEL", "env"),
        ("UNRELATED_VARIABLE", "ignored"),
    ]);
    let args = CommonArgs { listen: Some("127.0.0.1:3000".parse().unwrap()), ..Default::default() };
    let mut flags = args.overrides();
    flags.push(("demo.label".into(), ConfigValue::from("flag")));

    let config: DemoConfig = load(&SPEC, Some(&file), &env, &flags).unwrap();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:3000", "flag wins over env, file, default");
    assert_eq!(config.demo.label, "flag", "a service flag wins too");
    assert_eq!(config.server.shutdown_timeout_secs, 20, "env wins over file");
    assert_eq!(config.demo.replicas, 5, "file wins over default");
    assert_eq!(config.log.level, "warn", "file wins over default");
    assert_eq!(config.log.format, photon_runtime::config::LogFormat::Auto, "untouched keys keep defaults");

    let without_flags: DemoConfig = load(&SPEC, Some(&file), &env, &[]).unwrap();
    assert_eq!(without_flags.server.listen.to_string(), "127.0.0.1:2000");
    let file_only: DemoConfig = load(&SPEC, Some(&file), &[], &[]).unwrap();
    assert_eq!(file_only.server.listen.to_string(), "127.0.0.1:1000");
}

#[test]
fn a_numeric_looking_env_value_for_a_string_key_stays_a_string() {
    let config: DemoConfig = load(&SPEC, None, &env(&[("DEMO_DEMO_LABEL", "8080")]), &[]).unwrap();
    assert_eq!(config.demo.label, "8080");
}

#[test]
fn bad_value_in_file_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "[demo]\nreplicas = \"three\"\n");
    let text = error_text(load(&SPEC, Some(&file), &[], &[]));
    assert!(text.contains("`demo.replicas`"), "{text}");
    assert!(text.contains("demo.toml"), "{text}");
}

#[test]
fn unknown_key_in_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "[server]\nlisen = \"127.0.0.1:1\"\n");
    let text = error_text(load(&SPEC, Some(&file), &[], &[]));
    assert!(text.contains("unknown key `server.lisen`"), "{text}");
    assert!(text.contains("listen"), "the message lists the valid keys: {text}");

    let file = write(dir.path(), "[demo]\nbogus = 1\n");
    assert!(error_text(load(&SPEC, Some(&file), &[], &[])).contains("`demo.bogus`"));

    let file = write(dir.path(), "[nosuchsection]\nx = 1\n");
    assert!(error_text(load(&SPEC, Some(&file), &[], &[])).contains("nosuchsection"));
}

#[test]
fn bad_enum_value_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "[server]\nmode = \"staging\"\n");
    let text = error_text(load(&SPEC, Some(&file), &[], &[]));
    assert!(text.contains("server.mode") && text.contains("staging"), "{text}");
}

#[test]
fn malformed_toml_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "[server\nlisten = \n");
    let text = error_text(load(&SPEC, Some(&file), &[], &[]));
    assert!(text.contains("demo.toml"), "{text}");
}

#[test]
fn unknown_or_bad_environment_variables_are_named() {
    let text = error_text(load(&SPEC, None, &env(&[("DEMO_SERVER_LISTN", "x")]), &[]));
    assert!(text.contains("DEMO_SERVER_LISTN") && text.contains("DEMO_SERVER_LISTEN"), "{text}");
    let text = error_text(load(&SPEC, None, &env(&[("DEMO_DEMO_REPLICAS", "many")]), &[]));
    assert!(text.contains("demo.replicas") && text.contains("DEMO_DEMO_REPLICAS"), "{text}");
}

#[test]
fn a_missing_config_file_is_an_error() {
    let text = error_text(load(&SPEC, Some(Path::new("/nonexistent/demo.toml")), &[], &[]));
    assert!(text.contains("/nonexistent/demo.toml"), "{text}");
}

#[test]
fn help_lists_every_key_with_its_env_var_and_default() {
    let help = config_help::<DemoConfig>(&SPEC);
    for (key, env, default) in [
        ("server.listen", "DEMO_SERVER_LISTEN", "\"127.0.0.1:4242\""),
        ("server.shutdown_timeout_secs", "DEMO_SERVER_SHUTDOWN_TIMEOUT_SECS", "30"),
        ("log.level", "DEMO_LOG_LEVEL", "\"info\""),
        ("tls.cert", "DEMO_TLS_CERT", "(unset)"),
        ("demo.replicas", "DEMO_DEMO_REPLICAS", "3"),
    ] {
        assert!(help.contains(&format!("{key} = {default}")), "{key} missing from:\n{help}");
        assert!(help.contains(env), "{env} missing from:\n{help}");
    }
}
