//! What a signed zone adds for answering with the DO bit: the RRSIGs of every authoritative
//! RRset, and the NSEC chain in canonical order, so the proof for a name that does not exist
//! (the NSEC whose owner is the greatest name before it) is one ordered-map lookup.

use std::collections::{BTreeMap, HashMap};

use hickory_proto::rr::{Name, Record, RecordType};

#[derive(Debug, Default, Clone)]
pub struct Signatures {
    /// By (owner, type covered).
    rrsigs: HashMap<(Name, RecordType), Vec<Record>>,
    /// By owner, in canonical DNS order (hickory's `Name` orders that way).
    nsec: BTreeMap<Name, Record>,
}

impl Signatures {
    pub fn new(rrsigs: HashMap<(Name, RecordType), Vec<Record>>, nsec: BTreeMap<Name, Record>) -> Self {
        Self { rrsigs, nsec }
    }

    /// The RRSIGs covering the RRset `owner`/`rtype` (owners as stored: lowercase).
    pub fn rrsigs(&self, owner: &Name, rtype: RecordType) -> &[Record] {
        self.rrsigs.get(&(owner.clone(), rtype)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The NSEC at `name` itself, if it is an owner in the chain.
    pub fn nsec_at(&self, name: &Name) -> Option<&Record> {
        self.nsec.get(name)
    }

    /// The NSEC that covers `name`: the last owner before it in canonical order (the apex's
    /// NSEC sorts first, so some NSEC always covers a name of the zone).
    pub fn nsec_covering(&self, name: &Name) -> Option<&Record> {
        self.nsec.range(..name.clone()).next_back().map(|(_, record)| record)
    }

    pub fn rrsig_count(&self) -> usize {
        self.rrsigs.values().map(Vec::len).sum()
    }

    pub fn nsec_count(&self) -> usize {
        self.nsec.len()
    }

    /// Every NSEC and RRSIG record (for transfers).
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.nsec.values().chain(self.rrsigs.values().flatten())
    }
}
