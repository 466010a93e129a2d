//! `photonctl login`, `whoami` and `photonctl iam ...` against a real IAM: tables and JSON, the
//! saved login (mode 0600), clear failures.

mod common;

use std::process::Command;

use common::Env;
use photon_testkit::binary;

struct Cli<'a> {
    env: &'a Env,
    config: tempfile::TempDir,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(binary("photonctl"))
            .args(args)
            .env("PHOTONCTL_CONFIG_DIR", self.config.path())
            .output()
            .expect("photonctl runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "photonctl {args:?} failed: {text}");
        text
    }

    fn login(&self, user: &str, password_file: &std::path::Path) -> (bool, String) {
        let url = self.env.iam.url();
        let ca = self.env.iam.ca();
        let (file, ca) = (password_file.to_string_lossy().into_owned(), ca.to_string_lossy().into_owned());
        self.run(&["login", user, "--endpoint", &url, "--ca", &ca, "--password-file", &file])
    }
}

#[tokio::test]
async fn login_whoami_and_admin_commands() {
    let env = Env::start(&[]).await;
    let cli = Cli { env: &env, config: tempfile::tempdir().unwrap() };
    let (ok, text) = cli.run(&["whoami"]);
    assert!(!ok && text.contains("not logged in"), "{text}");

    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "not-the-password").unwrap();
    let (ok, text) = cli.login("admin", wrong.path());
    assert!(!ok && text.contains("invalid credentials"), "{text}");
    let (ok, text) = cli.login("admin", env.password_file.path());
    assert!(ok && text.contains("logged in as user:admin"), "{text}");
    let saved = cli.config.path().join("credentials.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&saved).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(cli.ok(&["whoami"]).contains("user:admin"));
    let me: serde_json::Value = serde_json::from_str(&cli.ok(&["whoami", "-o", "json"])).unwrap();
    assert_eq!(me["principal"], "user:admin");

    cli.ok(&["iam", "org", "create", "acme"]);
    let (ok, text) = cli.run(&["iam", "org", "create", "acme"]);
    assert!(!ok && text.contains("already exists"), "{text}");
    let table = cli.ok(&["iam", "org", "ls"]);
    assert!(table.starts_with("NAME") && table.contains("acme"), "{table}");
    let orgs: serde_json::Value = serde_json::from_str(&cli.ok(&["iam", "-o", "json", "org", "ls"])).unwrap();
    assert_eq!(orgs["name"], "acme", "one org prints as one object: {orgs}");
    cli.ok(&["iam", "project", "create", "acme", "web"]);
    let password = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(password.path(), "alice-long-password\n").unwrap();
    let file = password.path().to_string_lossy().into_owned();
    cli.ok(&["iam", "user", "create", "alice", "--org", "acme", "--password-file", &file]);
    let binding = cli.ok(&["iam", "binding", "create", "orgs/acme/projects/web", "user:alice", "member"]);
    assert!(binding.contains("user:alice") && binding.contains("allow"), "{binding}");
    let (ok, text) = cli.run(&["iam", "binding", "create", "orgs/acme", "user:alice", "superuser"]);
    assert!(!ok && text.contains("role"), "{text}");
    let key: serde_json::Value =
        serde_json::from_str(&cli.ok(&["iam", "-o", "json", "access-key", "create", "user:alice"])).unwrap();
    assert!(key["key_id"].as_str().unwrap().starts_with("PK") && key["secret"].as_str().unwrap().len() >= 30, "{key}");
    let listed = cli.ok(&["iam", "access-key", "ls", "user:alice"]);
    assert!(listed.contains(key["key_id"].as_str().unwrap()) && !listed.contains(key["secret"].as_str().unwrap()));
    let audit = cli.ok(&["iam", "audit", "orgs/acme"]);
    assert!(audit.contains("iam:bindings:create"), "{audit}");

    // Alice logs in with her own password; she sees her org's project but cannot create orgs.
    let (ok, text) = cli.login("alice", password.path());
    assert!(ok, "{text}");
    let (ok, text) = cli.run(&["iam", "org", "create", "other"]);
    assert!(!ok && text.contains("PermissionDenied"), "{text}");
}
