//! Proves the Knot differential harness before flashdns is plugged into it: two knotd serving
//! the same zones agree on the whole corpus, and a one-record change is reported on exactly the
//! queries whose answers carry that record. Needs `knotd` (run scripts/setup); never skips.

mod support;

use std::collections::BTreeSet;
use std::fs;

use hickory_proto::op::{Edns, Message, OpCode, Query as Question};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{RData, Record, RecordType};

use support::corpus::{self, Category};
use support::differ;
use support::knot::{knotd_path, Knot};
use support::query::{ask, parse_name, Query};

/// Fixed so that a failure reproduces; any seed must pass.
const SEED: u64 = 0x5eed_f1a5_4d05;
/// The issue asks for at least 5,000 queries.
const CORPUS_SIZE: usize = 5_000;

/// How many differences a failing assertion prints in full.
const SHOWN: usize = 30;

fn show(differences: &[String]) -> String {
    let mut text = differences.iter().take(SHOWN).cloned().collect::<Vec<_>>().join("\n");
    if differences.len() > SHOWN {
        text.push_str(&format!("\n… and {} more", differences.len() - SHOWN));
    }
    text
}

#[test]
fn two_knots_with_the_same_zones_agree_on_the_whole_corpus() {
    knotd_path();
    let zones = support::fixture_zones();
    let zones = support::as_refs(&zones);
    let entries = corpus::generate_labelled(&zones, SEED, CORPUS_SIZE);
    println!("corpus (seed {SEED:#x}):\n{}", corpus::summary(&entries));
    assert_eq!(entries.len(), CORPUS_SIZE);
    let categories: BTreeSet<Category> = entries.iter().map(|e| e.category).collect();
    let all = [
        Category::Apex,
        Category::Existing,
        Category::Alias,
        Category::EmptyNonTerminal,
        Category::WildcardLiteral,
        Category::UnderWildcard,
        Category::UnderWildcardDeep,
        Category::NxSibling,
        Category::NxChild,
        Category::NxBelowLeaf,
        Category::Delegation,
        Category::BelowDelegation,
        Category::Glue,
        Category::Dname,
        Category::UnderDname,
        Category::OutOfZone,
    ];
    let missing: Vec<_> = all.iter().filter(|c| !categories.contains(c)).collect();
    assert!(missing.is_empty(), "the fixtures produce no query of categories {missing:?}");

    let a = Knot::start(&zones);
    let b = Knot::start(&zones);
    // The client sends the name as written, so the differ can check the echo of its case.
    let odd = Query { name: "WwW.ExAmPlE.TeSt.".into(), rtype: RecordType::A, edns: None, dnssec_ok: false, tcp: true };
    let echoed = differ::normalize(&ask(a.addr(), &odd).expect("knotd answers over TCP"));
    assert_eq!(echoed.question, ["WwW.ExAmPlE.TeSt. IN A"]);
    let queries: Vec<_> = entries.into_iter().map(|e| e.query).collect();
    let differences = differ::compare(a.addr(), b.addr(), &queries);
    assert!(
        differences.is_empty(),
        "{} of {} queries answered differently by two identical knotd:\n{}",
        differences.len(),
        queries.len(),
        show(&differences)
    );
}

#[test]
fn a_changed_record_is_reported_on_the_queries_that_carry_it() {
    knotd_path();
    let zones = support::fixture_zones();
    let zones = support::as_refs(&zones);
    // www.example.test A 192.0.2.21 becomes 192.0.2.99 in the second server's copy.
    let original = fs::read_to_string(zones[0].1).expect("read example.test.zone");
    let changed_line = "www             A       192.0.2.21";
    assert!(original.contains(changed_line), "fixture lost the line this test changes");
    let dir = tempfile::tempdir().expect("tempdir for the changed zone");
    let changed = dir.path().join("example.test.zone");
    fs::write(&changed, original.replace(changed_line, "www             A       192.0.2.99"))
        .expect("write the changed zone");
    let mut changed_zones = zones.clone();
    changed_zones[0].1 = &changed;

    let a = Knot::start(&zones);
    let b = Knot::start(&changed_zones);
    let queries = corpus::generate(&zones, SEED, CORPUS_SIZE);
    let differences: Vec<(&Query, String)> =
        queries.iter().filter_map(|q| differ::compare_one(a.addr(), b.addr(), q).map(|d| (q, d))).collect();
    let texts: Vec<String> = differences.iter().map(|(_, d)| d.clone()).collect();
    println!("{} differences, for example:\n{}", texts.len(), show(&texts[..texts.len().min(3)]));

    // The queries touching the record: those whose (untruncated) answer from the unchanged server
    // carries it in any section.
    let carries_it = |q: &&Query| {
        let answer = differ::normalize(&ask(a.addr(), q).unwrap_or_else(|e| panic!("{q}: {e}")));
        !answer.flags.tc
            && [&answer.answer, &answer.authority, &answer.additional]
                .iter()
                .flat_map(|section| section.iter())
                .any(|rr| rr.owner == "www.example.test." && rr.rtype == "A" && rr.rdata == "192.0.2.21")
    };
    let expected: BTreeSet<&Query> = queries.iter().filter(carries_it).collect();
    let reported: BTreeSet<&Query> = differences.iter().map(|(q, _)| *q).collect();
    assert!(!expected.is_empty(), "no query of the corpus reaches www.example.test A");
    assert!(
        expected.iter().any(|q| q.name.eq_ignore_ascii_case("www.example.test.") && q.rtype == RecordType::A),
        "the corpus does not ask www.example.test A"
    );
    let missed: Vec<String> = expected.difference(&reported).map(|q| q.to_string()).collect();
    let extra: Vec<String> = reported.difference(&expected).map(|q| q.to_string()).collect();
    assert!(missed.is_empty() && extra.is_empty(), "not reported: {missed:#?}\nreported but unrelated: {extra:#?}");
    let names_it = |d: &&String| {
        d.lines().any(|l| l.contains("only a: www.example.test. ") && l.ends_with(" A 192.0.2.21"))
            && d.lines().any(|l| l.contains("only b: www.example.test. ") && l.ends_with(" A 192.0.2.99"))
    };
    let unnamed: Vec<String> = texts.iter().filter(|d| !names_it(d)).cloned().collect();
    assert!(unnamed.is_empty(), "differences that do not name the changed record:\n{}", show(&unnamed));
}

#[test]
fn the_corpus_is_deterministic_for_a_seed() {
    let zones = support::fixture_zones();
    let zones = support::as_refs(&zones);
    let first = corpus::generate(&zones, SEED, 6_000);
    assert_eq!(first, corpus::generate(&zones, SEED, 6_000), "same seed, different corpus");
    assert_ne!(first, corpus::generate(&zones, SEED + 1, 6_000), "the seed does not matter");
    let small = corpus::generate(&zones, SEED, 100);
    assert_eq!(small.len(), 100);
}

#[test]
fn the_differ_compares_what_it_documents() {
    let www = |owner: &str, ttl: u32, last: u8| {
        Record::from_rdata(parse_name(owner).expect("owner"), ttl, RData::A(A::new(192, 0, 2, last)))
    };
    let message = |question: &str, answers: Vec<Record>| {
        let mut m = Message::response(7, OpCode::Query);
        m.add_query(Question::query(parse_name(question).expect("question"), RecordType::A));
        m.add_answers(answers);
        m
    };
    let differs = |a: &Message, b: &Message| differ::diff(&differ::normalize(a), &differ::normalize(b));
    let base = message("WwW.example.test.", vec![www("www.example.test.", 60, 1), www("www.example.test.", 60, 2)]);

    // Order of records and case of owners do not matter.
    let reordered =
        message("WwW.example.test.", vec![www("WWW.Example.TEST.", 60, 2), www("www.example.test.", 60, 1)]);
    assert_eq!(differs(&base, &reordered), Vec::<String>::new());
    // The question's case, a TTL, a duplicate and a missing record do.
    let lowered = message("www.example.test.", vec![www("www.example.test.", 60, 1), www("www.example.test.", 60, 2)]);
    assert!(differs(&base, &lowered).iter().any(|l| l.starts_with("question:")));
    let ttl = message("WwW.example.test.", vec![www("www.example.test.", 61, 1), www("www.example.test.", 60, 2)]);
    assert_eq!(differs(&base, &ttl).len(), 2, "{:?}", differs(&base, &ttl));
    let mut duplicated = base.clone();
    duplicated.add_answer(www("www.example.test.", 60, 2));
    assert_eq!(differs(&base, &duplicated), ["answer: only b: www.example.test. 60 IN A 192.0.2.2"]);
    // TXT strings keep their boundaries.
    let txt = |strings: &[&str]| {
        let mut m = message("t.example.test.", vec![]);
        let rdata = RData::TXT(TXT::new(strings.iter().map(|s| s.to_string()).collect()));
        m.add_answer(Record::from_rdata(parse_name("t.example.test.").expect("name"), 60, rdata));
        m
    };
    assert_eq!(differs(&txt(&["a", "b"]), &txt(&["ab"])).len(), 2);
    // EDNS presence and payload size.
    let mut with_edns = base.clone();
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    with_edns.set_edns(edns);
    assert!(differs(&base, &with_edns).iter().any(|l| l.starts_with("edns:")));
    // Truncated on both sides: records are not compared; on one side only: everything is.
    let mut tc_a = base.clone();
    tc_a.metadata.truncation = true;
    let mut tc_b = message("WwW.example.test.", vec![]);
    tc_b.metadata.truncation = true;
    assert_eq!(differs(&tc_a, &tc_b), Vec::<String>::new());
    assert!(differs(&base, &tc_b).iter().any(|l| l.starts_with("flags:")));
    assert!(differs(&base, &tc_b).iter().any(|l| l.starts_with("answer: only a:")));
}
