//! The query path, bytes in and bytes out: whatever arrives, `flashdns::dns::respond` must not
//! panic, and what it sends back (if anything) must be a DNS response to that query: it
//! decodes, carries the query's id and opcode with QR set, and fits the transport (512 bytes
//! over UDP without EDNS, at most 1232 with it, 65535 over a stream, which never truncates).
//! The catalog is the test fixtures' zones (`flashdns/tests/zones/*.zone`), built once.

#![no_main]

use std::sync::{Arc, OnceLock};

use flashdns::dns::{respond, Catalog, Transport, Zone};
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;

/// Where the fixtures live, fixed when the target is built.
const ZONES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/zones");
/// What `respond` may send over UDP whatever the client offers (DNS Flag Day 2020).
const MAX_UDP: usize = 1232;

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
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
        Catalog::new(zones)
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

fn check(query: &[u8], transport: Transport) {
    let Some((bytes, outcome)) = respond(catalog(), query, transport) else { return };
    if bytes.is_empty() {
        return; // Silence, in the form `error` falls back to; allowed.
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
}

fuzz_target!(|query: &[u8]| {
    check(query, Transport::Udp);
    check(query, Transport::Stream);
});
