//! The Knot differential harness shared by flashdns's integration tests (`mod support;`): a real
//! knotd to compare against, a DNS client, the corpus of queries and the comparison.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod corpus;
pub mod differ;
pub mod knot;
pub mod query;
pub mod zone_model;

use std::path::PathBuf;

/// The fixture zones in `flashdns/tests/zones/`, as (origin, file) pairs.
pub fn fixture_zones() -> Vec<(&'static str, PathBuf)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/zones");
    [
        ("example.test.", "example.test.zone"),
        ("other.test.", "other.test.zone"),
        ("2.0.192.in-addr.arpa.", "2.0.192.in-addr.arpa.zone"),
    ]
    .into_iter()
    .map(|(origin, file)| (origin, dir.join(file)))
    .collect()
}

/// Borrows `fixture_zones()` in the shape `Knot::start` and `corpus::generate` take.
pub fn as_refs<'a>(zones: &'a [(&'a str, PathBuf)]) -> Vec<(&'a str, &'a std::path::Path)> {
    zones.iter().map(|(origin, path)| (*origin, path.as_path())).collect()
}
