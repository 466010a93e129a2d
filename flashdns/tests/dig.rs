//! FlashDNS answered by the real clients operators use: `dig` and `kdig`, over UDP, TCP and
//! DNS over TLS, for every record type and every kind of answer (wildcards, CNAME chains,
//! DNAME, delegations, NXDOMAIN, NODATA, REFUSED, truncation).

mod common;

use std::path::Path;

use common::{dig, flags, kdig, section, status, Stack};

fn zone_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zones").join(name)
}

#[tokio::test]
async fn dig_sees_every_record_type_and_answer_kind() {
    let stack = Stack::start(&[]).await;
    stack.load_zone("dig.test", &zone_file("dig.test.zone"));
    stack.wait_served("dig.test.").await;
    let at = stack.dns_addr;

    // Every type, over UDP, authoritative.
    let cases = [
        ("www.dig.test.", "A", "www.dig.test. 3600 IN A 192.0.2.10"),
        ("www.dig.test.", "AAAA", "www.dig.test. 3600 IN AAAA 2001:db8::10"),
        ("mail.dig.test.", "MX", "mail.dig.test. 3600 IN MX 10 mx1.dig.test."),
        ("txt.dig.test.", "TXT", "txt.dig.test. 3600 IN TXT \"v=spf1 -all\" \"second string\""),
        ("_sip._tcp.dig.test.", "SRV", "_sip._tcp.dig.test. 3600 IN SRV 10 60 5060 sip.dig.test."),
        ("caa.dig.test.", "CAA", "caa.dig.test. 3600 IN CAA 0 issue \"letsencrypt.org\""),
        ("ptr.dig.test.", "PTR", "ptr.dig.test. 3600 IN PTR www.dig.test."),
        ("dig.test.", "NS", "dig.test. 3600 IN NS ns1.dig.test."),
        ("alias.dig.test.", "CNAME", "alias.dig.test. 3600 IN CNAME www.dig.test."),
        ("old.dig.test.", "DNAME", "old.dig.test. 3600 IN DNAME new.dig.test."),
    ];
    for (name, rtype, want) in cases {
        let out = dig(at, &[name, rtype, "+norecurse"]);
        assert_eq!(status(&out), "NOERROR", "{name} {rtype}: {out}");
        assert!(flags(&out).contains("aa"), "{name} {rtype} is authoritative: {out}");
        let answer = section(&out, "ANSWER");
        assert!(answer.iter().any(|l| l == want), "{name} {rtype}: want {want:?} in {answer:?}");
    }
    // The same, and every kind of answer, from dig and kdig over UDP, TCP and DNS over TLS.
    let tls = std::net::SocketAddr::from(([127, 0, 0, 1], stack.dot_port()));
    let kinds: &[(&str, &str, &str, &[&str])] = &[
        ("www.dig.test.", "A", "NOERROR", &["www.dig.test. 3600 IN A 192.0.2.10"]),
        ("www.dig.test.", "AAAA", "NOERROR", &["www.dig.test. 3600 IN AAAA 2001:db8::10"]),
        ("mail.dig.test.", "MX", "NOERROR", &["mail.dig.test. 3600 IN MX 10 mx1.dig.test."]),
        ("txt.dig.test.", "TXT", "NOERROR", &["txt.dig.test. 3600 IN TXT \"v=spf1 -all\" \"second string\""]),
        ("_sip._tcp.dig.test.", "SRV", "NOERROR", &["_sip._tcp.dig.test. 3600 IN SRV 10 60 5060 sip.dig.test."]),
        ("caa.dig.test.", "CAA", "NOERROR", &["caa.dig.test. 3600 IN CAA 0 issue \"letsencrypt.org\""]),
        ("ptr.dig.test.", "PTR", "NOERROR", &["ptr.dig.test. 3600 IN PTR www.dig.test."]),
        ("alias.dig.test.", "CNAME", "NOERROR", &["alias.dig.test. 3600 IN CNAME www.dig.test."]),
        ("old.dig.test.", "DNAME", "NOERROR", &["old.dig.test. 3600 IN DNAME new.dig.test."]),
        ("dig.test.", "NS", "NOERROR", &["dig.test. 3600 IN NS ns1.dig.test.", "dig.test. 3600 IN NS ns2.dig.test."]),
        ("chain.dig.test.", "A", "NOERROR", &["chain.dig.test. 3600 IN CNAME alias.dig.test.", "alias.dig.test. 3600 IN CNAME www.dig.test.", "www.dig.test. 3600 IN A 192.0.2.10"]),
        ("x.wild.dig.test.", "A", "NOERROR", &["x.wild.dig.test. 3600 IN A 192.0.2.99"]),
        ("a.old.dig.test.", "A", "NOERROR", &["old.dig.test. 3600 IN DNAME new.dig.test.", "a.old.dig.test. 3600 IN CNAME a.new.dig.test.", "a.new.dig.test. 3600 IN A 192.0.2.111"]),
        ("host.sub.dig.test.", "A", "NOERROR", &[]),
        ("nope.dig.test.", "A", "NXDOMAIN", &[]),
        ("www.dig.test.", "MX", "NOERROR", &[]),
        ("www.example.org.", "A", "REFUSED", &[]),
    ];
    for (name, rtype, want_status, want) in kinds {
        let runs = [
            ("dig udp", dig(at, &[name, rtype])),
            ("dig tcp", dig(at, &["+tcp", name, rtype])),
            ("kdig tcp", kdig(at, &["+tcp", name, rtype])),
            ("kdig tls", kdig(tls, &["+tls", name, rtype])),
        ];
        for (client, out) in runs {
            assert_eq!(status(&out), *want_status, "{client} {name} {rtype}: {out}");
            let mut got = section(&out, "ANSWER");
            let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{client} {name} {rtype}: {out}");
        }
    }

    let sshfp = section(&dig(at, &["ssh.dig.test.", "SSHFP"]), "ANSWER").join("\n");
    assert!(sshfp.contains("SSHFP 1 2 123456789ABCDEF6"), "{sshfp}");
    let tlsa = section(&dig(at, &["_443._tcp.dig.test.", "TLSA"]), "ANSWER").join("\n");
    assert!(tlsa.contains("TLSA 3 1 1 0123456789ABCDEF"), "{tlsa}");
    let soa = section(&dig(at, &["dig.test.", "SOA"]), "ANSWER").join("\n");
    assert!(soa.contains("SOA ns1.dig.test. hostmaster.dig.test."), "{soa}");

    // Additional section: the MX target's address.
    let out = dig(at, &["mail.dig.test.", "MX"]);
    assert!(section(&out, "ADDITIONAL").iter().any(|l| l == "mx1.dig.test. 3600 IN A 192.0.2.25"), "{out}");

    // A CNAME chain is followed within the zone.
    let out = dig(at, &["chain.dig.test.", "A"]);
    assert_eq!(
        section(&out, "ANSWER"),
        vec![
            "chain.dig.test. 3600 IN CNAME alias.dig.test.",
            "alias.dig.test. 3600 IN CNAME www.dig.test.",
            "www.dig.test. 3600 IN A 192.0.2.10"
        ],
        "{out}"
    );

    // Wildcards: a name that does not exist matches; an existing one does not.
    let out = dig(at, &["anything.wild.dig.test.", "A"]);
    assert_eq!(section(&out, "ANSWER"), vec!["anything.wild.dig.test. 3600 IN A 192.0.2.99"], "{out}");
    let out = dig(at, &["two.labels.wild.dig.test.", "A"]);
    assert_eq!(section(&out, "ANSWER"), vec!["two.labels.wild.dig.test. 3600 IN A 192.0.2.99"], "{out}");
    let out = dig(at, &["real.wild.dig.test.", "A"]);
    assert_eq!(section(&out, "ANSWER"), vec!["real.wild.dig.test. 3600 IN A 192.0.2.98"], "{out}");
    // The wildcard answers other types with NODATA, not NXDOMAIN.
    let out = dig(at, &["anything.wild.dig.test.", "MX"]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(section(&out, "ANSWER").is_empty(), "{out}");

    // DNAME: the DNAME, a synthesized CNAME, and the target's answer.
    let out = dig(at, &["a.old.dig.test.", "A"]);
    let answer = section(&out, "ANSWER");
    assert!(answer.contains(&"old.dig.test. 3600 IN DNAME new.dig.test.".to_string()), "{out}");
    assert!(answer.contains(&"a.old.dig.test. 3600 IN CNAME a.new.dig.test.".to_string()), "{out}");
    assert!(answer.contains(&"a.new.dig.test. 3600 IN A 192.0.2.111".to_string()), "{out}");

    // A delegation: a referral, not authoritative, with glue.
    let out = dig(at, &["host.sub.dig.test.", "A", "+norecurse"]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(!flags(&out).contains("aa"), "a referral is not authoritative: {out}");
    assert!(section(&out, "ANSWER").is_empty(), "{out}");
    assert_eq!(section(&out, "AUTHORITY"), vec!["sub.dig.test. 3600 IN NS ns.sub.dig.test."], "{out}");
    assert_eq!(section(&out, "ADDITIONAL"), vec!["ns.sub.dig.test. 3600 IN A 192.0.2.200"], "{out}");

    // NXDOMAIN and NODATA carry the SOA with the negative TTL (min of SOA TTL and MINIMUM).
    let out = dig(at, &["nope.dig.test.", "A"]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    let authority = section(&out, "AUTHORITY");
    assert_eq!(authority.len(), 1, "{out}");
    assert!(authority[0].starts_with("dig.test. 300 IN SOA"), "{out}");
    let out = dig(at, &["www.dig.test.", "MX"]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(section(&out, "AUTHORITY")[0].starts_with("dig.test. 300 IN SOA"), "{out}");
    // An empty non-terminal exists: NODATA, not NXDOMAIN (RFC 8020).
    let out = dig(at, &["under.dig.test.", "A"]);
    assert_eq!(status(&out), "NOERROR", "{out}");

    // Names in no served zone are refused.
    let out = dig(at, &["www.example.org.", "A"]);
    assert_eq!(status(&out), "REFUSED", "{out}");

    // The query name's case is kept.
    let out = dig(at, &["WwW.DiG.TeSt.", "A"]);
    assert!(out.contains(";WwW.DiG.TeSt.\t"), "question case kept: {out}");
    assert_eq!(section(&out, "ANSWER").len(), 1, "{out}");

    // health.local answers 127.0.0.1.
    let out = dig(at, &["health.local.", "A"]);
    assert_eq!(section(&out, "ANSWER"), vec!["health.local. 0 IN A 127.0.0.1"], "{out}");
}

#[tokio::test]
async fn truncation_over_udp_then_tcp_and_tls_carry_the_answer() {
    let stack = Stack::start(&[]).await;
    stack.load_zone("dig.test", &zone_file("dig.test.zone"));
    stack.wait_served("dig.test.").await;
    let at = stack.dns_addr;

    // Ten 80-byte TXT records do not fit 512 bytes: TC, then dig retries over TCP by itself.
    let out = dig(at, &["big.dig.test.", "TXT", "+noedns", "+ignore"]);
    assert!(flags(&out).contains("tc"), "truncated over UDP without EDNS: {out}");
    let out = dig(at, &["big.dig.test.", "TXT", "+noedns"]);
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert_eq!(section(&out, "ANSWER").len(), 10, "{out}");
    // With EDNS and a large enough buffer it fits in one datagram.
    let out = dig(at, &["big.dig.test.", "TXT", "+bufsize=1232"]);
    assert!(!flags(&out).contains("tc"), "{out}");
    assert_eq!(section(&out, "ANSWER").len(), 10, "{out}");
    assert!(out.contains("udp: 1232"), "the server's EDNS payload size: {out}");

    // TCP and TLS directly.
    let out = dig(at, &["www.dig.test.", "A", "+tcp"]);
    assert_eq!(section(&out, "ANSWER"), vec!["www.dig.test. 3600 IN A 192.0.2.10"], "{out}");
    let tls_at = std::net::SocketAddr::from(([127, 0, 0, 1], stack.dot_port()));
    let out = kdig(tls_at, &["+tls", "www.dig.test.", "A"]);
    assert!(out.contains("www.dig.test.") && out.contains("192.0.2.10"), "kdig over TLS: {out}");
    // dig offers ALPN "dot"; kdig offers none: both reach DNS, not the HTTP API.
    let out = dig(tls_at, &["+tls", "chain.dig.test.", "A"]);
    assert!(section(&out, "ANSWER").contains(&"www.dig.test. 3600 IN A 192.0.2.10".to_string()), "dig over TLS: {out}");
    let out = kdig(at, &["+tcp", "nope.dig.test.", "A"]);
    assert!(out.contains("NXDOMAIN"), "kdig over TCP: {out}");
    // The API still answers on the same port.
    let (status, health) = stack.dns.curl("GET", "/health", None, &[]);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["zones"], 1, "{health}");
}
