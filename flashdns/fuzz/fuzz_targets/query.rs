//! The query path, bytes in and bytes out: whatever arrives, `flashdns::dns::respond` must not
//! panic, and what it sends back (if anything) must be a DNS response to that query: it
//! decodes, carries the query's id, opcode and question spelling with QR set, and fits the
//! transport (512 bytes over UDP without EDNS, at most 1232 with it, 65535 over a stream, which
//! never truncates). The catalog is the test fixtures' zones (`flashdns/tests/zones/*.zone`),
//! built once, and the responses it may keep go into one answer cache (`transport::cache`, as
//! the servers' workers use it), which fills as the fuzzer runs; each input is then asked again
//! with another id and its question in other case, which the cache answers, and that answer
//! must be the one made afresh.

#![no_main]

use std::sync::{Arc, OnceLock};

use flashdns::dns::respond::respond_deferring;
use flashdns::dns::{respond, Catalog, Outcome, Transport, Zone};
use flashdns::transport::cache::{AnswerCache, Tally};
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;

/// Where the fixtures live, fixed when the target is built.
const ZONES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/zones");
/// What `respond` may send over UDP whatever the client offers (DNS Flag Day 2020).
const MAX_UDP: usize = 1232;

/// The catalog every input shares, and the responses kept from it.
struct Fixtures {
    shared: Catalog,
    cache: AnswerCache,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let mut zones = Vec::new();
        for entry in std::fs::read_dir(ZONES).expect("the zone fixtures") {
            let path = entry.expect("a directory entry").path();
            let Some(origin) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".zone")) else {
                continue;
            };
            let origin: Name = format!("{origin}.").parse().expect("a zone file is named for its zone");
            let text = std::fs::read_to_string(&path).expect("a readable fixture");
            let file = flashdns::zonefile::parse(&text, Some(&origin), None)
                .unwrap_or_else(|e| panic!("{} parses: {e}", path.display()));
            zones.push(Arc::new(Zone::build(origin, file.records).expect("the fixture builds")));
        }
        assert!(!zones.is_empty(), "no zones in {ZONES}");
        Fixtures { shared: Catalog::new(zones), cache: AnswerCache::default() }
    })
}

/// The most `query` may get back over `transport`.
fn limit(query: &[u8], transport: Transport) -> usize {
    match transport {
        Transport::Stream => u16::MAX as usize,
        // A query hickory cannot read gets at most a header and its question back.
        Transport::Udp => match Message::from_vec(query) {
            Ok(request) => request.edns.map_or(512, |edns| (edns.max_payload() as usize).clamp(512, MAX_UDP)),
            Err(_) => MAX_UDP,
        },
    }
}

/// The question's name as the query wrote it (uncompressed), if it has one.
fn question_name(query: &[u8]) -> Option<&[u8]> {
    let mut at = 12;
    loop {
        let len = *query.get(at)? as usize;
        if len & 0xc0 != 0 {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            return query.get(12..at);
        }
    }
}

/// `query` with another id and the letters of its question's name in the other case.
fn respelled(query: &[u8]) -> Vec<u8> {
    let mut other = query.to_vec();
    if other.len() >= 2 {
        other[0] ^= 0x5a;
        other[1] ^= 0xa5;
    }
    if let Some(name) = question_name(query) {
        for byte in &mut other[12..12 + name.len()] {
            if byte.is_ascii_alphabetic() {
                *byte ^= 0x20;
            }
        }
    }
    other
}

/// A response's header, OPT, answers and authorities with names in one case, and its additional
/// records apart: for comparing two encodings of one answer.
fn content(bytes: &[u8]) -> (String, Vec<String>) {
    let message = Message::from_vec(bytes).expect("checked: it decodes");
    let text = |records: &[hickory_proto::rr::Record]| -> Vec<String> {
        records.iter().map(|r| r.to_string().to_ascii_lowercase()).collect()
    };
    let main = format!(
        "{:?} {:?} {:?} {:?}",
        message.metadata,
        message.edns,
        text(&message.answers),
        text(&message.authorities)
    );
    (main, text(&message.additionals))
}

/// The same answer, though the encodings differ: the same header and sections, but for
/// additional records, which are optional (RFC 2181 §9): filled first-fit, encodings of
/// different lengths may keep different ones, but only ever records of `all` (the additional
/// section with no size limit).
fn same_answer(a: &[u8], b: &[u8], all: &[String]) -> bool {
    let ((main_a, extra_a), (main_b, extra_b)) = (content(a), content(b));
    main_a == main_b && extra_a.iter().chain(&extra_b).all(|r| all.contains(r))
}

/// `bytes`, with `outcome`, is a response to `query` as the module's doc says.
fn check(query: &[u8], bytes: Vec<u8>, outcome: Outcome, transport: Transport) -> Option<(Vec<u8>, Outcome)> {
    if bytes.is_empty() {
        return Some((bytes, outcome)); // Silence, in the form `error` falls back to; allowed.
    }
    let response = Message::from_vec(&bytes)
        .unwrap_or_else(|e| panic!("{transport:?}: the response does not decode: {e}\n{bytes:02x?}"));
    let meta = &response.metadata;
    // `respond` answers only what has a whole header, so the id and opcode bytes are there.
    assert!(query.len() >= 12, "{transport:?}: answered {} bytes, less than a header", query.len());
    assert_eq!(meta.id, u16::from_be_bytes([query[0], query[1]]), "{transport:?}: the id is not the query's");
    assert_eq!(meta.message_type, MessageType::Response, "{transport:?}: QR is not set");
    assert_eq!(u8::from(meta.op_code), (query[2] >> 3) & 0x0f, "{transport:?}: the opcode is not the query's");
    // By number: BADVERS and BADSIG share 16, and hickory decodes 16 as BADSIG.
    assert_eq!(
        u16::from(meta.response_code),
        u16::from(outcome.rcode),
        "{transport:?}: the outcome's rcode is not the response's"
    );
    let limit = limit(query, transport);
    assert!(bytes.len() <= limit, "{transport:?}: {} bytes, more than {limit}", bytes.len());
    if transport == Transport::Stream {
        assert!(!meta.truncation, "TC set over a stream");
    }
    assert_eq!(meta.truncation, outcome.truncated, "{transport:?}: TC and the outcome disagree");
    if let (Some(asked), false) = (question_name(query), response.queries.is_empty()) {
        let end = 12 + asked.len();
        assert_eq!(bytes.get(12..end), Some(asked), "{transport:?}: the question is not spelled as asked");
    }
    Some((bytes, outcome))
}

fuzz_target!(|query: &[u8]| {
    let fixtures = fixtures();
    for transport in [Transport::Udp, Transport::Stream] {
        let Some((bytes, outcome, deferred)) = respond_deferring(&fixtures.shared, query, transport) else {
            continue;
        };
        if deferred.cacheable {
            let tally = Tally { counter: Default::default(), truncated: outcome.truncated, class: 0 };
            fixtures.cache.put(fixtures.shared.generation(), query, transport, &bytes, tally);
        }
        check(query, bytes, outcome.clone(), transport);
        // Asked again, differently spelled: from the cache if the answer was kept (the same
        // bytes but for id and case, so the same outcome).
        let again = respelled(query);
        let mut out = Vec::new();
        let generation = fixtures.shared.generation();
        let cached = match fixtures.cache.hit(generation, &again, transport, &mut out, |out, _| out.clone()) {
            Some(hit) => check(&again, hit, outcome, transport),
            None => respond(&fixtures.shared, &again, transport).and_then(|(b, o)| check(&again, b, o, transport)),
        };
        let fresh = respond(&fixtures.shared, &again, transport);
        match (cached, fresh) {
            (None, None) => {}
            (Some((a, x)), Some((b, y))) => {
                assert_eq!(a.is_empty(), b.is_empty(), "{transport:?}: silence from one catalog only");
                // hickory compresses a name against an earlier one only when their case matches,
                // so a fresh answer to a question spelled unlike the zone can be longer than the
                // cached one (made for another spelling): it may keep fewer additional records,
                // or be truncated where that one fits.
                if a != b && !a.is_empty() && x.truncated == y.truncated {
                    let all = respond(&fixtures.shared, &again, Transport::Stream)
                        .map(|(unlimited, _)| content(&unlimited).1)
                        .unwrap_or_default();
                    assert!(
                        x == y && same_answer(&a, &b, &all),
                        "{transport:?}: the cached answer is not the fresh one\n\
                         cached ({} bytes, {x:?}):\n{}\nfresh ({} bytes, {y:?}):\n{}",
                        a.len(),
                        Message::from_vec(&a).map(|m| m.to_string()).unwrap_or_default(),
                        b.len(),
                        Message::from_vec(&b).map(|m| m.to_string()).unwrap_or_default(),
                    );
                }
            }
            (a, b) => panic!("{transport:?}: answered by one catalog only: cached {a:?}, fresh {b:?}"),
        }
    }
});
