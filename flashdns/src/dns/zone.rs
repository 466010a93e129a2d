//! One zone in memory, shaped for answering: every owner name (and every empty non-terminal
//! between an owner and the apex) is a node holding its RRsets, so "does this name exist" and
//! "what is here" are one hash lookup each.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::signed::Signatures;
use super::synth::PtrSynthesis;

/// The RRsets at one owner name. Empty for an empty non-terminal (RFC 8020: it exists).
#[derive(Debug, Default, Clone)]
pub struct Node {
    rrsets: Vec<(RecordType, Arc<Vec<Record>>)>,
}

impl Node {
    pub fn get(&self, rtype: RecordType) -> Option<&Arc<Vec<Record>>> {
        self.rrsets.iter().find(|(t, _)| *t == rtype).map(|(_, set)| set)
    }

    pub fn rrsets(&self) -> impl Iterator<Item = &Arc<Vec<Record>>> {
        self.rrsets.iter().map(|(_, set)| set)
    }

    pub fn is_empty(&self) -> bool {
        self.rrsets.is_empty()
    }

    /// Orders each RRset's records by their data in canonical wire form (RFC 4034 §6.3), as
    /// Knot keeps them: what fits into a truncated response is then the same records.
    fn sort_canonically(&mut self) {
        for (_, set) in &mut self.rrsets {
            if set.len() > 1 {
                Arc::make_mut(set).sort_by_cached_key(|r| canonical_rdata(&r.data));
            }
        }
    }

    fn push(&mut self, record: Record) {
        let rtype = record.record_type();
        match self.rrsets.iter_mut().find(|(t, _)| *t == rtype) {
            Some((_, set)) => {
                let set = Arc::make_mut(set);
                // RFC 2181 §5.2: one TTL per RRset; the first record's wins, as Knot does.
                let mut record = record;
                if let Some(first) = set.first() {
                    record.ttl = first.ttl;
                }
                if !set.iter().any(|r| r.data == record.data) {
                    set.push(record);
                }
            }
            None => self.rrsets.push((rtype, Arc::new(vec![record]))),
        }
    }
}

/// `data` in canonical wire form: names uncompressed and lowercase.
fn canonical_rdata(data: &RData) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_canonical_form(true);
    encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
    // Data that does not encode cannot be sent either; it sorts first and is harmless.
    let _ = data.emit(&mut encoder);
    bytes
}

#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("zone {0} has no SOA record at its apex")]
    NoSoa(String),
    #[error("record {owner} {rtype} is outside the zone {zone}")]
    OutOfZone { owner: String, rtype: RecordType, zone: String },
}

/// A zone ready to answer from. Immutable: a change builds a new one (records are shared).
#[derive(Debug)]
pub struct Zone {
    origin: Name,
    serial: u32,
    soa: Record,
    nodes: HashMap<Name, Node>,
    synthesis: Option<PtrSynthesis>,
    signatures: Option<Arc<Signatures>>,
}

impl Zone {
    /// Builds the zone from its records (duplicates collapse, as in an RRset).
    pub fn build(origin: Name, records: impl IntoIterator<Item = Record>) -> Result<Self, ZoneError> {
        let origin = origin.to_lowercase();
        let mut nodes: HashMap<Name, Node> = HashMap::new();
        nodes.insert(origin.clone(), Node::default());
        for record in records {
            let owner = record.name.to_lowercase();
            if !origin.zone_of(&owner) {
                return Err(ZoneError::OutOfZone {
                    owner: owner.to_ascii(),
                    rtype: record.record_type(),
                    zone: origin.to_ascii(),
                });
            }
            // Empty non-terminals between the apex and the owner exist (RFC 4592 §2.2.2).
            let mut parent = owner.base_name();
            while super::lookup::labels(&parent) > super::lookup::labels(&origin) && !nodes.contains_key(&parent) {
                nodes.insert(parent.clone(), Node::default());
                parent = parent.base_name();
            }
            let mut record = record;
            record.name = owner.clone();
            nodes.entry(owner).or_default().push(record);
        }
        for node in nodes.values_mut() {
            node.sort_canonically();
        }
        let soa = nodes
            .get(&origin)
            .and_then(|apex| apex.get(RecordType::SOA))
            .and_then(|set| set.first().cloned())
            .ok_or_else(|| ZoneError::NoSoa(origin.to_ascii()))?;
        let serial = match &soa.data {
            RData::SOA(soa) => soa.serial,
            _ => 0,
        };
        Ok(Self { origin, serial, soa, nodes, synthesis: None, signatures: None })
    }

    /// A reverse zone that names the addresses of its subnet that have no PTR of their own.
    pub fn with_synthesis(mut self, synthesis: PtrSynthesis) -> Self {
        self.synthesis = Some(synthesis);
        self
    }

    /// A signed zone: its RRSIGs and NSEC chain (`dnssec::sign_zone`).
    pub fn with_signatures(mut self, signatures: Signatures) -> Self {
        self.signatures = Some(Arc::new(signatures));
        self
    }

    pub fn signatures(&self) -> Option<&Signatures> {
        self.signatures.as_deref()
    }

    pub fn synthesis(&self) -> Option<&PtrSynthesis> {
        self.synthesis.as_ref()
    }

    pub fn origin(&self) -> &Name {
        &self.origin
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// The TTL of a negative answer (RFC 2308 §5): the lesser of the SOA's TTL and MINIMUM.
    pub fn negative_ttl(&self) -> u32 {
        match &self.soa.data {
            RData::SOA(soa) => self.soa.ttl.min(soa.minimum),
            _ => self.soa.ttl,
        }
    }

    /// The SOA as it goes into the authority section of a negative answer.
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        soa.ttl = self.negative_ttl();
        soa
    }

    pub fn node(&self, name: &Name) -> Option<&Node> {
        self.nodes.get(name)
    }

    pub fn apex(&self) -> &Node {
        // The apex node is inserted first by `build` and never removed.
        &self.nodes[&self.origin]
    }

    /// Every owner name with its node (unordered).
    pub fn nodes(&self) -> impl Iterator<Item = (&Name, &Node)> {
        self.nodes.iter()
    }

    /// Every record of the zone (unordered), for transfers and export.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.nodes.values().flat_map(|node| node.rrsets()).flat_map(|set| set.iter())
    }

    pub fn record_count(&self) -> usize {
        self.records().count()
    }
}
