//! DNSSEC online signing, checked by a validating client (`delv`, BIND's validator) holding the
//! zone's trust anchor: signed answers, NXDOMAIN and NODATA proofs, wildcards and referrals
//! validate, before and after a record change, and across a key rollover with no gap.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{dig, Stack};

fn zone_file() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zones/dig.test.zone")
}

/// A delv trust-anchor file for the zone from one DS line of the API (`<zone> <ttl> IN DS
/// <tag> <alg> <digest type> <digest>`).
fn anchor_file(ds: &str) -> tempfile::NamedTempFile {
    let fields: Vec<&str> = ds.split_whitespace().collect();
    assert_eq!(fields.get(3), Some(&"DS"), "a DS line: {ds}");
    let text = format!(
        "trust-anchors {{ \"{}\" static-ds {} {} {} \"{}\"; }};\n",
        fields[0], fields[4], fields[5], fields[6], fields[7]
    );
    let file = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(file.path(), text).expect("write the anchor");
    file
}

/// `delv @server -p port -a anchor +root=dig.test name type`: its output.
fn delv(stack: &Stack, anchor: &Path, name: &str, rtype: &str) -> String {
    let out = std::process::Command::new("delv")
        .arg(format!("@{}", stack.dns_addr.ip()))
        .args(["-p", &stack.dns_addr.port().to_string(), "-a"])
        .arg(anchor)
        .args(["+root=dig.test", name, rtype])
        .output()
        .expect("delv runs (scripts/setup installs bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Every case validates (positive, NXDOMAIN, NODATA, wildcard, CNAME, referral's DS proof).
fn all_validate(stack: &Stack, anchor: &Path, when: &str) {
    let cases = [
        ("www.dig.test.", "A", "fully validated"),
        ("dig.test.", "DNSKEY", "fully validated"),
        ("mail.dig.test.", "MX", "fully validated"),
        ("chain.dig.test.", "A", "fully validated"),
        ("anything.wild.dig.test.", "A", "fully validated"),
        ("nope.dig.test.", "A", "negative response, fully validated"),
        ("www.dig.test.", "TXT", "negative response, fully validated"),
        ("under.dig.test.", "A", "negative response, fully validated"),
        ("anything.wild.dig.test.", "MX", "negative response, fully validated"),
        ("sub.dig.test.", "DS", "negative response, fully validated"),
    ];
    for (name, rtype, want) in cases {
        let out = delv(stack, anchor, name, rtype);
        assert!(out.contains(want), "{when}: delv {name} {rtype} should say {want:?}:\n{out}");
    }
}

async fn wait_for(stack: &Stack, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "{what} within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stack;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_validator_with_the_trust_anchor_validates_answers_changes_and_a_rollover() {
    let stack = Stack::start(&[]).await;
    let t = &stack.tenant;
    stack.load_zone("dig.test", &zone_file());
    stack.wait_served("dig.test.").await;
    let (status, view) = stack.api("POST", "/zones/dig.test/dnssec", Some(r#"{"algorithm":"ECDSAP256SHA256"}"#), t);
    assert_eq!(status, 201, "{view}");
    let first_ds = view["keys"][0]["ds"].as_str().expect("a DS").to_string();
    let first_tag = view["keys"][0]["tag"].as_u64().expect("a tag");
    let first = anchor_file(&first_ds);
    wait_for(&stack, "the zone signed", || dig(stack.dns_addr, &["dig.test.", "DNSKEY", "+dnssec"]).contains("RRSIG")).await;
    all_validate(&stack, first.path(), "signed");
    // Without the DO bit nothing DNSSEC is added.
    let plain = dig(stack.dns_addr, &["www.dig.test.", "A"]);
    assert!(!plain.contains("RRSIG"), "{plain}");

    // A record change is signed too.
    let (status, body) = stack.api("PUT", "/zones/dig.test/records/new/A", Some(r#"{"ttl":60,"data":["192.0.2.77"]}"#), t);
    assert_eq!(status, 200, "{body}");
    wait_for(&stack, "the new record", || dig(stack.dns_addr, &["new.dig.test.", "A"]).contains("192.0.2.77")).await;
    let out = delv(&stack, first.path(), "new.dig.test.", "A");
    assert!(out.contains("fully validated") && out.contains("192.0.2.77"), "{out}");
    let out = delv(&stack, first.path(), "gone.dig.test.", "A");
    assert!(out.contains("negative response, fully validated"), "{out}");

    // Rollover to an Ed25519 key: both keys sign, so either anchor validates throughout.
    let (status, view) = stack.api("POST", "/zones/dig.test/dnssec/rollover", Some(r#"{"algorithm":"ED25519"}"#), t);
    assert_eq!(status, 200, "{view}");
    let keys = view["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 2, "{view}");
    let second_ds = keys.iter().find(|k| k["tag"].as_u64() != Some(first_tag)).and_then(|k| k["ds"].as_str()).expect("the new DS");
    let second = anchor_file(second_ds);
    wait_for(&stack, "both keys published", || dig(stack.dns_addr, &["dig.test.", "DNSKEY"]).matches("DNSKEY\t257").count() == 2).await;
    all_validate(&stack, first.path(), "during the rollover, old anchor");
    all_validate(&stack, second.path(), "during the rollover, new anchor");
    // The parent's DS now names the new key; the old one goes.
    let (status, view) = stack.api("DELETE", &format!("/zones/dig.test/dnssec/keys/{first_tag}"), None, t);
    assert_eq!(status, 200, "{view}");
    wait_for(&stack, "one key left", || dig(stack.dns_addr, &["dig.test.", "DNSKEY"]).matches("DNSKEY\t257").count() == 1).await;
    all_validate(&stack, second.path(), "after the rollover");
    let out = delv(&stack, first.path(), "www.dig.test.", "A");
    assert!(!out.contains("fully validated"), "the retired key's anchor no longer validates:\n{out}");

    // Refusals that name the problem.
    let (status, body) = stack.api("POST", "/zones/dig.test/dnssec", Some(r#"{"algorithm":"RSASHA1"}"#), t);
    assert_eq!(status, 409, "already signed: {body}");
    let (status, body) = stack.api("POST", "/zones/dig.test/dnssec/rollover", Some(r#"{"algorithm":"RSASHA1"}"#), t);
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("algorithm")), "{body}");
    let (status, body) = stack.api("DELETE", "/zones/dig.test/dnssec/keys/1", None, t);
    assert_eq!(status, 404, "{body}");
    // Unsigned again: no RRSIGs.
    let (status, body) = stack.api("DELETE", "/zones/dig.test/dnssec", None, t);
    assert_eq!(status, 200, "{body}");
    wait_for(&stack, "unsigned", || !dig(stack.dns_addr, &["www.dig.test.", "A", "+dnssec"]).contains("RRSIG")).await;
}
