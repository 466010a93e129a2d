//! End-to-end tests of `parse` and `export`: a realistic zone, round trips, and the errors an
//! operator will meet, each with the line it must name.

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{export, parse, ZoneFile, ZoneFileError};

/// A zone as an operator writes one: every supported type, a multi-line SOA with comments,
/// `$ORIGIN` changes, relative and absolute names, omitted owners and TTLs.
const ZONE: &str = r#"; example.com, hand-written
$ORIGIN example.com.
$TTL 1h
@       IN  SOA ns1.example.com. hostmaster (   ; rname is relative: hostmaster.example.com.
                2024010101 ; serial
                2h         ; refresh
                30m        ; retry
                2w         ; expire
                300 )      ; negative caching TTL
        IN  NS   ns1
        IN  NS   ns2.example.net.
        IN  MX   10 mail
        IN  MX   20 mail.example.net.
        IN  TXT  "v=spf1 mx -all"
        IN  CAA  0 issue "letsencrypt.org"
        IN  CAA  128 iodef "mailto:security@example.com"
ns1     IN  A    192.0.2.53
mail    300 IN A 192.0.2.25
            AAAA 2001:db8::25
www     IN  CNAME @
_sip._tcp IN SRV 10 60 5060 sip
sip     IN  A    192.0.2.60
old     IN  DNAME new.example.net.
dkim._domainkey IN TXT ( "v=DKIM1; k=rsa; "
                         "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC" ) ; key in two strings
quotes  IN  TXT  "say \"hi\"" "semi;colon" "paren(" "\065\066" unquoted
host    IN  SSHFP 4 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
_443._tcp.www IN TLSA 3 1 1 ( 0123456789abcdef0123456789abcdef
                              0123456789abcdef0123456789abcdef )
$ORIGIN sub.example.com.
@       IN  A    192.0.2.80
ptr     IN  PTR  www.example.com.
$ORIGIN example.com.
last    1d  A    192.0.2.99
"#;

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("valid name")
}

fn example() -> Name {
    name("example.com.")
}

fn parse_example(text: &str) -> Result<ZoneFile, ZoneFileError> {
    parse(text, Some(&example()), None)
}

/// The records at `owner` of type `rtype`.
fn at<'z>(zone: &'z ZoneFile, owner: &str, rtype: RecordType) -> Vec<&'z Record> {
    let owner = name(owner);
    zone.records.iter().filter(|r| r.name == owner && r.record_type() == rtype).collect()
}

fn only<'z>(zone: &'z ZoneFile, owner: &str, rtype: RecordType) -> &'z Record {
    let found = at(zone, owner, rtype);
    assert_eq!(found.len(), 1, "{owner} {rtype}: {found:?}");
    found[0]
}

/// A record set in a comparable form: sorted, with the TTL, which `Record`'s `==` ignores.
fn canonical(records: &[Record]) -> Vec<(Record, u32)> {
    let mut all: Vec<(Record, u32)> = records.iter().map(|r| (r.clone(), r.ttl)).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fn syntax_error(result: Result<ZoneFile, ZoneFileError>) -> (usize, String) {
    match result {
        Err(ZoneFileError::Syntax { line, message }) => (line, message),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn realistic_zone_parses_every_type() {
    let zone = parse_example(ZONE).expect("valid zone");
    assert_eq!(zone.origin, example());
    assert_eq!(zone.records.len(), 22);

    let soa = only(&zone, "example.com.", RecordType::SOA);
    let RData::SOA(data) = &soa.data else { panic!("not SOA") };
    assert_eq!(
        (soa.ttl, data.serial, data.refresh, data.retry, data.expire, data.minimum),
        (3600, 2024010101, 7200, 1800, 1_209_600, 300)
    );
    assert_eq!(data.rname, name("hostmaster.example.com."));
    assert_eq!(at(&zone, "example.com.", RecordType::NS).len(), 2);
    let mx: Vec<String> = at(&zone, "example.com.", RecordType::MX).iter().map(|r| r.data.to_string()).collect();
    assert_eq!(mx, ["10 mail.example.com.", "20 mail.example.net."]);

    // An explicit TTL applies to its record only: with $TTL, the next record has 1h again.
    assert_eq!(only(&zone, "mail.example.com.", RecordType::A).ttl, 300);
    assert_eq!(only(&zone, "mail.example.com.", RecordType::AAAA).ttl, 3600);
    assert_eq!(only(&zone, "last.example.com.", RecordType::A).ttl, 86400);

    assert_eq!(only(&zone, "www.example.com.", RecordType::CNAME).data.to_string(), "example.com.");
    assert_eq!(only(&zone, "_sip._tcp.example.com.", RecordType::SRV).data.to_string(), "10 60 5060 sip.example.com.");
    assert_eq!(only(&zone, "ptr.sub.example.com.", RecordType::PTR).data.to_string(), "www.example.com.");
    assert_eq!(only(&zone, "sub.example.com.", RecordType::A).data.to_string(), "192.0.2.80");

    let dname = only(&zone, "old.example.com.", RecordType::DNAME);
    assert_eq!(
        dname.data,
        RData::Unknown { code: RecordType::DNAME, rdata: NULL::with(b"\x03new\x07example\x03net\x00".to_vec()) }
    );

    let RData::TXT(dkim) = &only(&zone, "dkim._domainkey.example.com.", RecordType::TXT).data else { panic!() };
    assert_eq!(dkim.txt_data.len(), 2);
    assert_eq!(&*dkim.txt_data[0], b"v=DKIM1; k=rsa; ");
    let RData::TXT(quotes) = &only(&zone, "quotes.example.com.", RecordType::TXT).data else { panic!() };
    let strings: Vec<&[u8]> = quotes.txt_data.iter().map(|s| &**s).collect();
    assert_eq!(strings, [&b"say \"hi\""[..], b"semi;colon", b"paren(", b"AB", b"unquoted"]);

    let caa: Vec<String> = at(&zone, "example.com.", RecordType::CAA).iter().map(|r| r.data.to_string()).collect();
    assert_eq!(caa, ["0 issue \"letsencrypt.org\"", "128 iodef \"mailto:security@example.com\""]);
    let RData::SSHFP(sshfp) = &only(&zone, "host.example.com.", RecordType::SSHFP).data else { panic!() };
    assert_eq!(sshfp.fingerprint.len(), 32);
    let RData::TLSA(tlsa) = &only(&zone, "_443._tcp.www.example.com.", RecordType::TLSA).data else { panic!() };
    assert_eq!(tlsa.cert_data.len(), 32);
}

#[test]
fn export_then_parse_gives_the_same_records() {
    let zone = parse_example(ZONE).expect("valid zone");
    let text = export(&zone.origin, &zone.records);
    let again = parse(&text, Some(&zone.origin), None).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(canonical(&again.records), canonical(&zone.records), "{text}");
    // And the text is stable: exporting the re-read zone writes the same file.
    assert_eq!(export(&again.origin, &again.records), text);
}

#[test]
fn export_layout() {
    let zone = parse_example(ZONE).expect("valid zone");
    let text = export(&zone.origin, &zone.records);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    let has = |words: &[&str]| lines.iter().any(|l| l == words);
    assert_eq!(lines[0], ["$ORIGIN", "example.com."]);
    assert_eq!(lines[1], ["$TTL", "3600"]);
    assert_eq!(
        lines[2],
        [
            "@",
            "IN",
            "SOA",
            "ns1.example.com.",
            "hostmaster.example.com.",
            "2024010101",
            "7200",
            "1800",
            "1209600",
            "300"
        ]
    );
    assert_eq!(lines[3], ["@", "IN", "NS", "ns1.example.com."]);
    assert_eq!(lines[4], ["@", "IN", "NS", "ns2.example.net."]);
    assert!(has(&["old", "IN", "DNAME", "new.example.net."]), "{text}");
    assert!(has(&["mail", "300", "IN", "A", "192.0.2.25"]), "{text}");
    assert!(has(&["last", "86400", "IN", "A", "192.0.2.99"]), "{text}");
    assert!(has(&["ptr.sub", "IN", "PTR", "www.example.com."]), "{text}");
    assert!(text.contains(r#""say \"hi\"" "semi;colon" "paren(" "AB" "unquoted""#), "{text}");
    // Canonical order after the apex NS: the apex's other types by number, then the names
    // compared label by label from the right ('_' sorts before letters).
    let owners: Vec<&str> = lines[5..].iter().map(|l| l[0]).collect();
    let types: Vec<&str> = lines[5..].iter().filter(|l| l[0] == "@").map(|l| l[2]).collect();
    assert_eq!(types, ["MX", "MX", "TXT", "CAA", "CAA"]);
    let mut names: Vec<&str> = owners.iter().copied().filter(|&o| o != "@").collect();
    names.dedup();
    assert_eq!(
        names,
        [
            "dkim._domainkey",
            "_sip._tcp",
            "host",
            "last",
            "mail",
            "ns1",
            "old",
            "quotes",
            "sip",
            "sub",
            "ptr.sub",
            "www",
            "_443._tcp.www"
        ]
    );
}

#[test]
fn dname_round_trip() {
    let text = concat!(
        "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n",
        "old DNAME new.example.net.\nrel DNAME elsewhere\n",
    );
    let zone = parse_example(text).expect("valid zone");
    let exported = export(&zone.origin, &zone.records);
    assert!(exported.contains("DNAME new.example.net.\n"), "{exported}");
    assert!(exported.contains("DNAME elsewhere.example.com.\n"), "{exported}");
    let again = parse_example(&exported).expect("exported zone parses");
    assert_eq!(canonical(&again.records), canonical(&zone.records));
}

#[test]
fn unknown_types_round_trip_in_generic_form() {
    let text = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\nx TYPE65280 \\# 3 ABCDEF\ny TYPE13 \\# 4 01610162\n";
    let zone = parse_example(text).expect("valid zone");
    let exported = export(&zone.origin, &zone.records);
    assert!(exported.contains("TYPE65280 \\# 3 abcdef"), "{exported}");
    let again = parse_example(&exported).expect("exported zone parses");
    assert_eq!(canonical(&again.records), canonical(&zone.records));
}

#[test]
fn without_an_origin_the_soa_names_the_zone() {
    // What `dig axfr` prints: absolute names, no $ORIGIN, no $TTL.
    let text = concat!(
        "example.org. 3600 IN SOA ns.example.org. h.example.org. 1 2 3 4 5\n",
        "example.org. 3600 IN NS ns.example.org.\n",
        "ns.example.org. 60 IN A 192.0.2.1\n",
    );
    let zone = parse(text, None, None).expect("valid zone");
    assert_eq!(zone.origin, name("example.org."));
    assert_eq!(zone.records.len(), 3);
}

#[test]
fn bad_address_names_its_line() {
    let text =
        "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n\n; the next record is wrong\nbad A 1.2.3\n";
    let (line, message) = syntax_error(parse_example(text));
    assert_eq!(line, 7);
    assert_eq!(message, "bad A address 1.2.3");
}

#[test]
fn multi_line_record_error_names_its_first_line() {
    let text = "$TTL 60\n\n@ SOA ns hostmaster (\n  1 ; serial\n  2h 30m\n  forever ; not a time\n  5 )\n";
    let (line, message) = syntax_error(parse_example(text));
    assert_eq!(line, 3, "{message}");
    assert!(message.starts_with("bad SOA data"), "{message}");
}

#[test]
fn include_is_refused() {
    let text = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\n$INCLUDE other.zone\n";
    let (line, message) = syntax_error(parse_example(text));
    assert_eq!(line, 3);
    assert_eq!(message, "$INCLUDE is not supported: import the included file's records directly");
}

#[test]
fn unknown_type_is_named() {
    let text = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\nwww IN FOO bar\n";
    assert_eq!(syntax_error(parse_example(text)), (3, "unknown record type FOO".to_owned()));
}

#[test]
fn record_outside_the_zone_is_refused() {
    let text = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\nwww.other.org. A 192.0.2.1\n";
    assert_eq!(
        syntax_error(parse_example(text)),
        (3, "record www.other.org. is outside the zone example.com.".to_owned())
    );
}

#[test]
fn cname_beside_other_data_is_refused() {
    let text = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\nwww A 192.0.2.1\nwww CNAME @\n";
    let (line, message) = syntax_error(parse_example(text));
    assert_eq!(line, 4);
    assert!(message.starts_with("www.example.com. has a CNAME and other data (A on line 3)"), "{message}");
    let text = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\nwww CNAME @\n    TXT \"hi\"\n";
    let (line, message) = syntax_error(parse_example(text));
    assert_eq!(line, 4);
    assert!(message.contains("www.example.com. has a CNAME (line 3) and other data (TXT)"), "{message}");
}

#[test]
fn soa_must_be_there_once_at_the_apex() {
    let err = parse_example("$TTL 60\n@ NS ns\n").expect_err("no SOA");
    assert!(matches!(&err, ZoneFileError::Zone(m) if m == "no SOA record at the zone apex example.com."), "{err}");
    let text = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\nsub SOA ns hostmaster 1 2 3 4 5\n";
    let (line, message) = syntax_error(parse_example(text));
    assert_eq!(
        (line, message.as_str()),
        (3, "the SOA record for sub.example.com. is not at the zone apex example.com.")
    );
    let text = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\n@ SOA ns hostmaster 2 2 3 4 5\n";
    assert_eq!(syntax_error(parse_example(text)).0, 3);
}

#[test]
fn nothing_may_sit_below_a_dname() {
    let text = "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\nold DNAME new.example.net.\nwww.old A 192.0.2.1\n";
    let (line, message) = syntax_error(parse_example(text));
    assert_eq!(line, 4);
    assert!(message.contains("below the DNAME at old.example.com."), "{message}");
}

#[test]
fn ttl_and_owner_defaults() {
    // No $TTL and no default: RFC 1035 reuses the last explicit TTL; the first record needs one.
    let err = parse("@ SOA ns hostmaster 1 2 3 4 5\n", Some(&example()), None).expect_err("no TTL");
    assert!(err.to_string().starts_with("line 1: the record has no TTL"), "{err}");
    let zone = parse("@ 120 SOA ns hostmaster 1 2 3 4 5\nwww A 192.0.2.1\n", Some(&example()), None).expect("valid");
    assert_eq!(only(&zone, "www.example.com.", RecordType::A).ttl, 120);
    // The caller's default stands in for $TTL.
    let zone = parse("@ SOA ns hostmaster 1 2 3 4 5\n", Some(&example()), Some(900)).expect("valid");
    assert_eq!(zone.records[0].ttl, 900);
    // An entry starting with a blank before any owner has nothing to repeat.
    let (line, _) = syntax_error(parse("$TTL 60\n  A 192.0.2.1\n", Some(&example()), None));
    assert_eq!(line, 2);
}

#[test]
fn relative_names_need_an_origin() {
    let (line, message) = syntax_error(parse("$TTL 60\nwww A 192.0.2.1\n", None, None));
    assert_eq!(line, 2);
    assert!(message.contains("no origin is known"), "{message}");
}

#[test]
fn odd_data_round_trips() {
    // Binary TXT, an escaped dot in a label, a CAA value with a special character, a wildcard,
    // empty generic data and the root as MX target ("no mail", RFC 7505).
    let text = concat!(
        "$TTL 60\n@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n",
        r#"bin TXT "\000\255\"\\;()" """#,
        "\n",
        r"dot\.ted A 192.0.2.2",
        "\n",
        r#"caa CAA 0 issuewild ";""#,
        "\n*.wild A 192.0.2.3\n",
        r"empty TYPE65281 \# 0",
        "\nnull MX 0 .\n",
    );
    let zone = parse_example(text).expect("valid zone");
    let RData::TXT(bin) = &only(&zone, "bin.example.com.", RecordType::TXT).data else { panic!() };
    let strings: Vec<&[u8]> = bin.txt_data.iter().map(|s| &**s).collect();
    assert_eq!(strings, [&b"\x00\xff\"\\;()"[..], b""]);
    let exported = export(&zone.origin, &zone.records);
    assert!(exported.contains(r#""\000\255\"\\;()" """#), "{exported}");
    assert!(exported.contains("\ndot\\.ted "), "{exported}");
    assert!(exported.contains(r"TYPE65281 \# 0"), "{exported}");
    let again = parse_example(&exported).unwrap_or_else(|e| panic!("{e}\n{exported}"));
    assert_eq!(canonical(&again.records), canonical(&zone.records));
}

#[test]
fn caa_tags_are_letters_and_digits() {
    // A fuzzer found `0 %e 2` accepted and exported in a form that does not read back.
    let origin: Name = "example.com.".parse().unwrap();
    let text = "$ORIGIN example.com.\n@ 60 IN SOA ns. h. 1 1 1 1 1\n@ 60 IN NS ns.\n@ 60 IN CAA 0 %e 2\n";
    let error = parse(text, Some(&origin), None).unwrap_err().to_string();
    assert!(error.contains("line 4") && error.contains("CAA tag"), "{error}");
}
