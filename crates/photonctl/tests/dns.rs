//! `photonctl dns` as a tenant uses it: the built binary, logged in to IAM as a user of one
//! project, against real chainfire, flaredb, IAM and flashdns-server (FlashDNS's test stack),
//! with `dig` checking that what photonctl set is what FlashDNS answers.

#[path = "../../../flashdns/tests/common/mod.rs"]
mod stack;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use photon_api::iam::v1 as pb;
use photon_testkit::{binary, output_with_stdin};
use serde_json::Value;
use stack::iam_env::bearer;
use stack::{dig, Stack};

const PASSWORD: &str = "alice-long-password";

/// photonctl with its own config dir (where `login` keeps the token).
struct Photonctl<'a> {
    config: &'a Path,
    stack: &'a Stack,
}

/// What a photonctl run did.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Photonctl<'_> {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = Command::new(binary("photonctl"));
        command.args(args).env("PHOTONCTL_CONFIG_DIR", self.config);
        let out = output_with_stdin(&mut command, stdin.unwrap_or_default());
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `photonctl dns ARGS` against the stack's flashdns.
    fn dns(&self, args: &[&str]) -> Run {
        self.dns_with_stdin(args, None)
    }

    fn dns_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let (url, ca) = (self.stack.dns.url(), self.stack.dns.ca().display().to_string());
        let mut line = vec!["dns", "--endpoint", &url, "--ca", &ca];
        line.extend_from_slice(args);
        self.run(&line, stdin)
    }

    /// Like `dns`, asserting success; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.dns(args);
        assert!(run.ok, "photonctl dns {args:?} failed: {}{}", run.stdout, run.stderr);
        run.stdout
    }
}

/// Waits until `dig name type` shows `want` in its answer (the mirror follows chainfire).
async fn wait_dig(stack: &Stack, name: &str, rtype: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = dig(stack.dns_addr, &[name, rtype, "+norecurse"]);
        if out.contains(want) {
            return out;
        }
        assert!(Instant::now() < deadline, "dig {name} {rtype} never showed {want:?}: {out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The record sets `record ls --output json` shows: (name, type, ttl, data).
fn record_sets(doc: &Value) -> Vec<(String, String, u64, Vec<String>)> {
    let sets = doc["record_sets"].as_array().unwrap_or_else(|| panic!("no record_sets in {doc}"));
    sets.iter()
        .map(|s| {
            let data = s["data"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect();
            (s["name"].as_str().unwrap().into(), s["type"].as_str().unwrap().into(), s["ttl"].as_u64().unwrap(), data)
        })
        .collect()
}

#[tokio::test]
async fn a_tenant_manages_zones_and_records_with_photonctl_dns() {
    let stack = Stack::start(&[]).await;
    // alice: a user of org acme, a member of its project web.
    let mut admin = stack.env.admin();
    let user = pb::CreateUserRequest {
        org: "acme".into(),
        name: "alice".into(),
        display_name: String::new(),
        password: PASSWORD.into(),
    };
    admin.create_user(bearer(&stack.root, user)).await.unwrap();
    let binding = pb::CreateBindingRequest {
        scope: "orgs/acme/projects/web".into(),
        principal: "user:alice".into(),
        role: "member".into(),
        ..Default::default()
    };
    admin.create_binding(bearer(&stack.root, binding)).await.unwrap();

    let config = tempfile::tempdir().unwrap();
    let ctl = Photonctl { config: config.path(), stack: &stack };
    let not_logged_in = ctl.dns(&["zone", "ls", "--project", "web"]);
    assert!(!not_logged_in.ok && not_logged_in.stderr.contains("photonctl login"), "{}", not_logged_in.stderr);
    let (iam, ca) = (stack.env.iam.url(), stack.env.iam.ca().display().to_string());
    let login = ctl.run(&["login", "alice", "--endpoint", &iam, "--ca", &ca], Some(PASSWORD));
    assert!(login.ok, "{}{}", login.stdout, login.stderr);

    // The token names alice's org but no project: --project is asked for.
    let run = ctl.dns(&["zone", "ls"]);
    assert!(!run.ok && run.stderr.contains("--project is required"), "{}", run.stderr);

    // Create (org from the login), then a record set that dig answers.
    let created =
        ctl.ok(&["zone", "create", "shop.test", "--ttl", "600", "--nameserver", "ns.shop.test.", "--project", "web"]);
    assert!(
        created.starts_with("NAME") && created.contains("shop.test.") && created.contains("ns.shop.test."),
        "{created}"
    );
    let set = ctl.ok(&[
        "--project",
        "web",
        "record",
        "set",
        "shop.test",
        "www",
        "A",
        "192.0.2.7",
        "192.0.2.8",
        "--ttl",
        "60",
    ]);
    assert!(set.contains("www.shop.test.") && set.contains("192.0.2.7,192.0.2.8"), "{set}");
    ctl.ok(&["--org", "acme", "--project", "web", "record", "set", "shop.test", "@", "TXT", "\"v=spf1 -all\""]);
    let answer = wait_dig(&stack, "www.shop.test.", "A", "192.0.2.8").await;
    let lines: Vec<String> = answer.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert!(lines.iter().any(|l| l == "www.shop.test. 60 IN A 192.0.2.7"), "{answer}");
    assert!(answer.contains("flags: qr aa"), "authoritative: {answer}");

    let doc: Value =
        serde_json::from_str(&ctl.ok(&["record", "ls", "shop.test", "--output", "json", "--project", "web"])).unwrap();
    let sets = record_sets(&doc);
    assert!(
        sets.contains(&("www.shop.test.".into(), "A".into(), 60, vec!["192.0.2.7".into(), "192.0.2.8".into()])),
        "{doc}"
    );
    assert!(sets.contains(&("shop.test.".into(), "TXT".into(), 300, vec!["\"v=spf1 -all\"".into()])), "{doc}");
    let table = ctl.ok(&["record", "ls", "shop.test", "--project", "web"]);
    assert!(table.starts_with("NAME") && table.contains("www.shop.test.") && table.contains("TXT"), "{table}");

    // Export: the zone file, with the SOA made from the flags.
    let exported = ctl.ok(&["zone", "export", "shop.test", "--project", "web"]);
    assert!(exported.contains("SOA") && exported.contains("ns.shop.test."), "{exported}");
    assert!(exported.contains("192.0.2.7") && exported.contains("v=spf1 -all"), "{exported}");

    // Signing: a key and its DS for the parent; then the answers carry RRSIGs.
    let signed = ctl.ok(&["zone", "sign", "shop.test", "--project", "web"]);
    assert!(signed.starts_with("TAG") && signed.contains("IN DS"), "{signed}");
    let keys = ctl.ok(&["zone", "keys", "shop.test", "--project", "web", "--output", "json"]);
    let keys: serde_json::Value = serde_json::from_str(&keys).expect("JSON keys");
    assert_eq!(keys["signed"], true, "{keys}");
    let ctl_off = ctl.ok(&["zone", "sign", "shop.test", "--off", "--project", "web"]);
    assert!(!ctl_off.contains("IN DS"), "{ctl_off}");

    // Import from stdin replaces every record set.
    let file = "$ORIGIN shop.test.\n$TTL 300\n\
                @ IN SOA ns.shop.test. hostmaster.shop.test. 9 3600 600 1209600 300\n\
                @ IN NS ns.shop.test.\n\
                mail IN A 192.0.2.25\n";
    let run = ctl.dns_with_stdin(&["zone", "import", "shop.test", "-", "--project", "web"], Some(file));
    assert!(run.ok && run.stdout.contains("shop.test."), "{}{}", run.stdout, run.stderr);
    wait_dig(&stack, "mail.shop.test.", "A", "192.0.2.25").await;
    wait_dig(&stack, "www.shop.test.", "A", "status: NXDOMAIN").await;
    let doc: Value =
        serde_json::from_str(&ctl.ok(&["--output", "json", "--project", "web", "record", "ls", "shop.test"])).unwrap();
    assert_eq!(record_sets(&doc), [("mail.shop.test.".into(), "A".into(), 300, vec!["192.0.2.25".into()])], "{doc}");
    // ... and the export imports back from a file.
    let path = config.path().join("shop.test.zone");
    std::fs::write(&path, &exported).unwrap();
    ctl.ok(&["zone", "import", "shop.test", path.to_str().unwrap(), "--project", "web"]);
    wait_dig(&stack, "www.shop.test.", "A", "192.0.2.7").await;

    // Refusals print the API's message and field, and exit non-zero.
    let run = ctl.dns(&["record", "set", "shop.test", "www", "A", "not-an-address", "--project", "web"]);
    assert!(!run.ok && run.stderr.contains("data[0]") && run.stderr.contains("invalid_argument"), "{}", run.stderr);
    let run = ctl.dns(&["zone", "export", "nope.test", "--project", "web"]);
    assert!(!run.ok && run.stderr.contains("not found") && run.stderr.contains("404"), "{}", run.stderr);
    let run = ctl.dns(&["zone", "ls", "--org", "beta", "--project", "web"]);
    assert!(!run.ok && run.stderr.contains("403"), "another org's zones are refused: {}", run.stderr);

    // Remove a record set, then the zone.
    let removed = ctl.ok(&["record", "rm", "shop.test", "www", "A", "--project", "web"]);
    assert_eq!(removed.trim(), "deleted www A in shop.test");
    wait_dig(&stack, "www.shop.test.", "A", "status: NXDOMAIN").await;
    wait_dig(&stack, "shop.test.", "TXT", "v=spf1 -all").await;
    let listed = ctl.ok(&["zone", "ls", "--project", "web"]);
    assert!(listed.lines().nth(1).is_some_and(|l| l.starts_with("shop.test.")), "{listed}");
    ctl.ok(&["zone", "rm", "shop.test", "--project", "web"]);
    wait_dig(&stack, "shop.test.", "TXT", "status: REFUSED").await;
    let doc: Value = serde_json::from_str(&ctl.ok(&["zone", "ls", "--project", "web", "-o", "json"])).unwrap();
    assert_eq!(doc["zones"], serde_json::json!([]), "{doc}");
}
