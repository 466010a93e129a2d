//! The differential corpus: queries derived from zone files, covering every category of lookup
//! (existing names, empty non-terminals, wildcards, delegations, DNAMEs, non-existent and
//! out-of-zone names) × every record type, in odd case, with and without EDNS, over UDP and TCP.
//! Deterministic for a given seed.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use hickory_proto::rr::{Name, RecordType};

use super::query::Query;
pub use super::zone_model::Category;
use super::zone_model::{classify, is_below, lowercase_fqdn, Zone};

/// Every type asked of every name. DNAME is asked too (a query for it below a DNAME is its own
/// case in RFC 6672 3.2); DS is not, since no fixture is signed.
pub const TYPES: [RecordType; 14] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::DNAME,
    RecordType::MX,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::NS,
    RecordType::PTR,
    RecordType::CAA,
    RecordType::SSHFP,
    RecordType::TLSA,
    RecordType::SOA,
    RecordType::ANY,
];

/// EDNS variants: none, the RFC 1035 minimum, the DNS Flag Day 2020 default, and a large one.
pub const EDNS_SIZES: [Option<u16>; 4] = [None, Some(512), Some(1232), Some(4096)];

/// Names that no fixture zone can contain; the classification still decides per name.
const FOREIGN_NAMES: [&str; 8] =
    [".", "test.", "nozone.test.", "www.nozone.test.", "invalid.", "arpa.", "in-addr.arpa.", "1.0.192.in-addr.arpa."];

/// A query with the category of its name.
#[derive(Clone, Debug)]
pub struct Entry {
    pub category: Category,
    pub query: Query,
}

/// `count` queries over the zones `zone_files` (origin, file), the same for the same seed.
pub fn generate(zone_files: &[(&str, &Path)], seed: u64, count: usize) -> Vec<Query> {
    generate_labelled(zone_files, seed, count).into_iter().map(|e| e.query).collect()
}

/// Like [`generate`], with each query's category (for statistics and for choosing subsets).
///
/// First every target name × every type (names that do not exist or are out of zone: a few
/// types, since their answers hardly depend on it), then, up to `count`, random targets and
/// freshly made names with random types. Every query gets a random case, EDNS size, DO bit and
/// transport. If `count` is smaller than the systematic part, a seeded sample of it.
pub fn generate_labelled(zone_files: &[(&str, &Path)], seed: u64, count: usize) -> Vec<Entry> {
    let zones: Vec<Zone> = zone_files.iter().map(|(origin, path)| Zone::load(origin, path)).collect();
    let targets = targets(&zones);
    let mut rng = SplitMix64(seed);
    let mut entries = Vec::new();
    for (name, category) in &targets {
        let mut types = TYPES.to_vec();
        if is_nonexistent(*category) {
            rng.shuffle(&mut types);
            types.truncate(NONEXISTENT_TYPES);
        }
        for rtype in types {
            entries.push(Entry { category: *category, query: variant(name, rtype, &mut rng) });
        }
    }
    if entries.len() >= count {
        rng.shuffle(&mut entries);
        entries.truncate(count);
        return entries;
    }
    // The fill picks a category first, so that categories with few names (DNAMEs, cuts) get as
    // many variants as those with many (non-existent names).
    let mut by_category: BTreeMap<Category, Vec<&Name>> = BTreeMap::new();
    for (name, category) in &targets {
        by_category.entry(*category).or_default().push(name);
    }
    let by_category: Vec<(Category, Vec<&Name>)> = by_category.into_iter().collect();
    while entries.len() < count {
        let (name, category) = if rng.percent(25) {
            fresh_name(&zones, &mut rng)
        } else {
            let (category, names) = &by_category[rng.below(by_category.len())];
            (names[rng.below(names.len())].clone(), *category)
        };
        let rtype = TYPES[rng.below(TYPES.len())];
        entries.push(Entry { category, query: variant(&name, rtype, &mut rng) });
    }
    entries
}

/// How many types the systematic part asks of a name that does not exist.
const NONEXISTENT_TYPES: usize = 4;

fn is_nonexistent(category: Category) -> bool {
    matches!(category, Category::NxSibling | Category::NxChild | Category::NxBelowLeaf | Category::OutOfZone)
}

/// A query for `name` and `rtype` in a random case, EDNS size, DO bit and transport.
fn variant(name: &Name, rtype: RecordType, rng: &mut SplitMix64) -> Query {
    let edns = EDNS_SIZES[rng.below(EDNS_SIZES.len())];
    Query {
        name: odd_case(&name.to_ascii(), rng),
        rtype,
        edns,
        dnssec_ok: edns.is_some() && rng.percent(25),
        tcp: rng.percent(15),
    }
}

/// How many queries of each category and of each variant, one per line.
pub fn summary(entries: &[Entry]) -> String {
    let mut by_category: BTreeMap<Category, usize> = BTreeMap::new();
    let mut by_edns: BTreeMap<String, usize> = BTreeMap::new();
    let (mut tcp, mut dnssec_ok, mut mixed_case) = (0, 0, 0);
    for Entry { category, query } in entries {
        *by_category.entry(*category).or_default() += 1;
        let edns = query.edns.map_or("none".to_string(), |size| size.to_string());
        *by_edns.entry(edns).or_default() += 1;
        tcp += usize::from(query.tcp);
        dnssec_ok += usize::from(query.dnssec_ok);
        mixed_case += usize::from(query.name.chars().any(|c| c.is_ascii_uppercase()));
    }
    let mut text = format!("{} queries\n", entries.len());
    for (category, n) in by_category {
        let _ = writeln!(text, "  {category:<18} {n:>6}");
    }
    let _ = writeln!(text, "  edns payload: {by_edns:?}");
    let _ = writeln!(text, "  tcp: {tcp}, udp: {}, DO bit: {dnssec_ok}, odd case: {mixed_case}", entries.len() - tcp);
    text
}

/// The names every type is asked of, in a fixed order, each with its category.
fn targets(zones: &[Zone]) -> Vec<(Name, Category)> {
    let mut out = Targets::default();
    for zone in zones {
        out.add(zones, zone.origin.clone(), Category::Apex);
        for name in zone.owners.keys().chain(&zone.empty_non_terminals) {
            out.add(zones, name.clone(), Category::Existing);
            if *name != zone.origin && !zone.is_occluded(name) {
                out.add_label(zones, "sibling-nx", &name.base_name(), Category::NxSibling);
            }
            let is_stop = zone.cuts().any(|c| c == name) || zone.dnames.contains_key(name);
            if !zone.is_occluded(name) && !is_stop {
                let intent = if zone.is_leaf(name) { Category::NxBelowLeaf } else { Category::NxChild };
                out.add_label(zones, "nx", name, intent);
            }
            if name.is_wildcard() {
                let parent = name.base_name();
                for labels in ["w1", "x-y", "a.b", "a.b.c"] {
                    out.add_label(zones, labels, &parent, Category::UnderWildcard);
                }
            }
        }
        for cut in zone.cuts() {
            for labels in ["host", "a.b", "ns1"] {
                out.add_label(zones, labels, cut, Category::BelowDelegation);
            }
        }
        for (owner, target) in &zone.dnames {
            for labels in ["nx", "a.b"] {
                out.add_label(zones, labels, owner, Category::UnderDname);
            }
            // The names that exist under the target, reached through the DNAME.
            for other in zones {
                for name in other.owners.keys().chain(&other.empty_non_terminals).filter(|n| is_below(n, target)) {
                    let depth = usize::from(name.num_labels() - target.num_labels());
                    if let Ok(prefix) = Name::from_labels(name.iter().take(depth)) {
                        let prefix = prefix.to_ascii();
                        out.add_label(zones, prefix.trim_end_matches('.'), owner, Category::UnderDname);
                    }
                }
            }
        }
    }
    for text in FOREIGN_NAMES {
        if let Ok(name) = lowercase_fqdn(text, &Name::root()) {
            out.add(zones, name, Category::OutOfZone);
        }
    }
    for zone in zones {
        // Beside and above each origin: no zone served there.
        out.add_label(
            zones,
            &format!("{}-nx", first_label(&zone.origin)),
            &zone.origin.base_name(),
            Category::OutOfZone,
        );
        out.add(zones, zone.origin.base_name(), Category::OutOfZone);
    }
    out.list
}

/// A name made up now (random labels), so that the corpus does not only ask fixed names.
fn fresh_name(zones: &[Zone], rng: &mut SplitMix64) -> (Name, Category) {
    let zone = &zones[rng.below(zones.len())];
    let owners: Vec<&Name> = zone.owners.keys().collect();
    let label = format!("r{:x}", rng.next() & 0xffff);
    let (parent, intent) = match rng.below(5) {
        0 => (owners[rng.below(owners.len())].base_name(), Category::NxSibling),
        1 => {
            let owner = owners[rng.below(owners.len())];
            (owner.clone(), if zone.is_leaf(owner) { Category::NxBelowLeaf } else { Category::NxChild })
        }
        2 => match owners.iter().filter(|n| n.is_wildcard()).collect::<Vec<_>>() {
            wild if !wild.is_empty() => (wild[rng.below(wild.len())].base_name(), Category::UnderWildcard),
            _ => (zone.origin.clone(), Category::NxChild),
        },
        3 => match zone.cuts().chain(zone.dnames.keys()).collect::<Vec<_>>() {
            tops if !tops.is_empty() => (tops[rng.below(tops.len())].clone(), Category::BelowDelegation),
            _ => (zone.origin.clone(), Category::NxChild),
        },
        _ => (Name::from_ascii("nozone.test.").unwrap_or_else(|_| Name::root()), Category::OutOfZone),
    };
    let labels = if rng.percent(30) { format!("{label}.deeper") } else { label };
    match Name::from_ascii(&labels).and_then(|l| l.append_domain(&parent)) {
        Ok(name) => {
            let name = name.to_lowercase();
            let category = classify(zones, &name, intent);
            (name, category)
        }
        // Too long a name: fall back to the parent itself.
        Err(_) => {
            let category = classify(zones, &parent, intent);
            (parent, category)
        }
    }
}

/// The target list without duplicates, each name classified when added.
#[derive(Default)]
struct Targets {
    list: Vec<(Name, Category)>,
    seen: HashSet<Name>,
}

impl Targets {
    fn add(&mut self, zones: &[Zone], name: Name, intent: Category) {
        if self.seen.insert(name.clone()) {
            let category = classify(zones, &name, intent);
            self.list.push((name, category));
        }
    }

    /// Adds `labels.parent`, if that is a valid name.
    fn add_label(&mut self, zones: &[Zone], labels: &str, parent: &Name, intent: Category) {
        if let Ok(name) = Name::from_ascii(labels).and_then(|l| l.append_domain(parent)) {
            self.add(zones, name.to_lowercase(), intent);
        }
    }
}

fn first_label(name: &Name) -> String {
    name.iter().next().map(|l| String::from_utf8_lossy(l).into_owned()).unwrap_or_default()
}

/// The name in random case, or all upper case one time in five (servers must answer
/// case-insensitively and echo the question as asked).
fn odd_case(name: &str, rng: &mut SplitMix64) -> String {
    if rng.percent(60) {
        return name.to_string();
    }
    if rng.percent(20) {
        return name.to_ascii_uppercase();
    }
    name.chars().map(|c| if rng.percent(50) { c.to_ascii_uppercase() } else { c }).collect()
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny and reproducible, no dependency; tests only.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, p: u64) -> bool {
        self.next() % 100 < p
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}
