//! Zone transfers to a real secondary: knotd takes a zone from flashdns by AXFR with TSIG, is
//! notified of each change made through the API and follows it by IXFR; a knotd with the wrong
//! secret gets nothing, and neither does an unsigned client. Needs `knotd` (scripts/setup);
//! never skips.

mod common;
mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::{dig, kdig, Stack};
use support::knot::{knotd_path, reserve_port, Knot, Secondary};

const ZONE: &str = "xfr.test.";
const KEY: &str = "xfr-key";
/// hmac-sha256 secrets, base64 (32 bytes each).
const SECRET: &str = "Zmxhc2hkbnMtdHJhbnNmZXItdGVzdC1zZWNyZXQtMzI=";
const WRONG_SECRET: &str = "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3JvbmctMzI=";
/// Enough hosts that a full transfer takes several messages.
const HOSTS: usize = 800;

/// The zone as imported: serial 2024010101, `www` and `gone`, and `HOSTS` hosts with text.
fn zone_file() -> String {
    let mut text = String::from(
        "$ORIGIN xfr.test.\n$TTL 3600\n\
         @ SOA ns1.xfr.test. hostmaster.xfr.test. 2024010101 3600 600 1209600 300\n\
         @ NS ns1\nns1 A 192.0.2.53\nwww A 192.0.2.1\ngone A 192.0.2.2\n",
    );
    for n in 0..HOSTS {
        let _ =
            writeln!(text, "host{n} A 198.51.100.{}\nhost{n} TXT \"host number {n} of the transfer test\"", n % 250);
    }
    text
}

/// The ANSWER lines of a dig/kdig output for `name` `rtype`, whitespace collapsed.
fn answers(out: &str, name: &str, rtype: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with(';'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 5 && f[0] == name && f[3] == rtype)
        .map(|f| f.join(" "))
        .collect()
}

/// Waits until knot answers `name` A with exactly `want` (`None`: NXDOMAIN), or fails with
/// knot's last answer and its log.
async fn wait_for(knot: &Knot, name: &str, want: Option<&str>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let out = dig(knot.addr(), &[name, "A", "+norecurse"]);
        let got = answers(&out, name, "A");
        let done = match want {
            Some(address) => got.len() == 1 && got[0].ends_with(address),
            None => out.contains("status: NXDOMAIN"),
        };
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "knot does not answer {name} A with {want:?} within {timeout:?}:\n{out}\nknotd's log:\n{}",
            knot.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn knot_follows_the_zone_by_axfr_ixfr_and_notify_and_a_wrong_key_gets_nothing() {
    knotd_path();
    let keys = format!("[\"{KEY}:hmac-sha256:{SECRET}\"]");
    let stack = Stack::start(&[("FLASHDNS_TRANSFER_KEYS", &keys)]).await;
    let (good_port, bad_port) = (reserve_port(), reserve_port());

    // The zone lists both knots as secondaries (so the wrong one is refused for its key, not
    // its address), and is loaded from a file.
    let spec = serde_json::json!({
        "name": ZONE,
        "secondaries": [
            { "address": format!("127.0.0.1:{good_port}"), "key": KEY },
            { "address": format!("127.0.0.1:{bad_port}"), "key": KEY },
        ],
    });
    let (status, body) = stack.api("POST", "/zones", Some(&spec.to_string()), &stack.tenant);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["spec"]["secondaries"][0]["key"], "xfr-key.", "{body}");
    let (status, body) = stack.api("POST", "/zones/xfr.test/import", Some(&zone_file()), &stack.tenant);
    assert_eq!(status, 200, "{body}");
    stack.wait_served(ZONE).await;

    // How knotd names flashdns in its log.
    let primary = format!("remote {}@{}", stack.dns_addr.ip(), stack.dns_addr.port());
    let secondary = |secret| Secondary { zone: ZONE, primary: stack.dns_addr, key_name: KEY, secret };
    let good = Knot::start_secondary(good_port, &secondary(SECRET));
    let bad = Knot::start_secondary(bad_port, &secondary(WRONG_SECRET));

    // The first transfer is a whole zone.
    wait_for(&good, "www.xfr.test.", Some("192.0.2.1"), Duration::from_secs(20)).await;
    let log = good.log();
    assert!(log.contains(&format!("AXFR, incoming, {primary}, finished")), "knotd's log:\n{log}");
    let out = dig(good.addr(), &["host799.xfr.test.", "TXT", "+norecurse"]);
    assert_eq!(answers(&out, "host799.xfr.test.", "TXT").len(), 1, "the last host arrived: {out}");

    // A change through the API: flashdns notifies, knot fetches the difference.
    let change = r#"{"ttl":300,"data":["192.0.2.99"]}"#;
    let (status, body) = stack.api("PUT", "/zones/xfr.test/records/www/A", Some(change), &stack.tenant);
    assert_eq!(status, 200, "{body}");
    wait_for(&good, "www.xfr.test.", Some("192.0.2.99"), Duration::from_secs(5)).await;
    let (status, body) = stack.api("DELETE", "/zones/xfr.test/records/gone/A", None, &stack.tenant);
    assert_eq!(status, 204, "{body}");
    wait_for(&good, "gone.xfr.test.", None, Duration::from_secs(5)).await;
    let log = good.log();
    for serial in ["2024010102", "2024010103"] {
        let notified = log.lines().any(|l| l.contains("notify, incoming") && l.ends_with(&format!("serial {serial}")));
        assert!(notified, "knot was notified of {serial}; its log:\n{log}");
    }
    assert_eq!(log.matches(&format!("IXFR, incoming, {primary}, finished")).count(), 2, "knotd's log:\n{log}");
    assert!(
        log.contains("serial 2024010101 -> 2024010102") && log.contains("serial 2024010102 -> 2024010103"),
        "{log}"
    );
    let out = dig(good.addr(), &[ZONE, "SOA", "+norecurse"]);
    assert!(
        answers(&out, ZONE, "SOA").iter().any(|l| l.contains(" 2024010103 ")),
        "knot is at the latest serial: {out}"
    );

    // The knot with the wrong secret was refused and serves nothing.
    let out = dig(bad.addr(), &["www.xfr.test.", "A", "+norecurse"]);
    assert!(answers(&out, "www.xfr.test.", "A").is_empty() && out.contains("status: SERVFAIL"), "{out}");
    let log = bad.log();
    assert!(log.contains("failed (failed to verify TSIG)") && !log.contains("XFR, incoming"), "knotd's log:\n{log}");

    // kdig with the key: the whole zone, every message's TSIG verified by kdig.
    let tsig = format!("hmac-sha256:{KEY}:{SECRET}");
    let out = kdig(stack.dns_addr, &["-y", &tsig, "AXFR", ZONE]);
    assert_eq!(answers(&out, ZONE, "SOA").len(), 2, "SOA first and last: {out}");
    assert_eq!(answers(&out, "www.xfr.test.", "A"), vec!["www.xfr.test. 300 IN A 192.0.2.99"], "{out}");
    let messages = out.lines().find(|l| l.starts_with(";; Received")).unwrap_or_default().to_string();
    assert!(!messages.contains("(1 messages"), "several messages: {messages}");
    assert!(!out.contains(";; WARNING") && !out.contains(";; ERROR"), "kdig verified every TSIG: {out}");

    // The wrong secret, or no TSIG at all, gets no records.
    let wrong = format!("hmac-sha256:{KEY}:{WRONG_SECRET}");
    let out = kdig(stack.dns_addr, &["-y", &wrong, "AXFR", ZONE]);
    assert!(out.contains("BADSIG") && answers(&out, ZONE, "SOA").is_empty(), "{out}");
    let out = dig(stack.dns_addr, &["AXFR", ZONE]);
    assert!(out.contains("Transfer failed") && answers(&out, ZONE, "SOA").is_empty(), "{out}");

    let (_, metrics) = stack.dns.curl("GET", "/metrics", None, &[]);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        r#"flashdns_transfers_total{zone="xfr.test.",kind="axfr",answer="full"}"#,
        r#"flashdns_transfers_total{zone="xfr.test.",kind="ixfr",answer="diff"}"#,
        r#"flashdns_transfer_refusals_total{reason="bad_sig"}"#,
        r#"flashdns_transfer_refusals_total{reason="unsigned"}"#,
        r#"flashdns_notifies_acked_total{zone="xfr.test."}"#,
    ] {
        assert!(metrics.contains(line), "{line} in /metrics:\n{metrics}");
    }
}
