//! The zone-file reader: whatever text arrives, `flashdns::zonefile::parse` must not panic;
//! a zone it accepts must build (`Zone::build`), and `export` of it must parse back to the same
//! records with the same TTLs, as `export` promises. The first byte picks the origin: none (the
//! SOA's owner names the zone) or `example.test.`.

#![no_main]

use flashdns::dns::Zone;
use flashdns::zonefile::{export, parse};
use hickory_proto::rr::{Name, Record};
use libfuzzer_sys::fuzz_target;

fn canonical(records: &[Record]) -> Vec<(Record, u32)> {
    let mut all: Vec<(Record, u32)> = records.iter().map(|r| (r.clone(), r.ttl)).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let origin: Option<Name> = (choice & 1 == 1).then(|| "example.test.".parse().expect("a name"));
    let Ok(zone) = parse(text, origin.as_ref(), None) else { return };
    let exported = export(&zone.origin, &zone.records);
    let again = parse(&exported, Some(&zone.origin), None)
        .unwrap_or_else(|e| panic!("the export does not parse: {e}\n--- input\n{text}\n--- export\n{exported}"));
    assert_eq!(canonical(&again.records), canonical(&zone.records), "--- input\n{text}\n--- export\n{exported}");
    let _ = Zone::build(zone.origin, zone.records);
});
