//! The authoritative answer to one question (RFC 1034 §4.3.2, with RFC 2308 negative answers,
//! RFC 4592 wildcards, RFC 6672 DNAME and RFC 8482 ANY): which records go into which section,
//! the rcode and the AA flag. Pure: no I/O, no wire format.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::dname;
use super::signed::Signatures;
use super::synth::Synthesized;
use super::zone::{Node, Zone};

/// How many CNAME/DNAME steps an answer follows before it stops (a loop ends here too).
const MAX_CHAIN: usize = 12;

/// The sections of an answer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// A referral: its glue is needed, so a response without all of it is truncated (RFC 9471).
    pub glue_required: bool,
    /// The query asked for DNSSEC records (the DO bit).
    pub dnssec: bool,
}

/// The zones a server answers for, by origin.
#[derive(Debug, Default)]
pub struct Catalog {
    zones: HashMap<Name, Arc<Zone>>,
    /// Which catalog this is among those a server published (0 until published): responses
    /// kept from it are good for it alone.
    generation: u64,
}

/// What one step of a lookup leads to.
enum Step {
    Done,
    /// Continue at this name (the target of a CNAME, or a name a DNAME synthesized).
    Chase(Name),
}

impl Catalog {
    pub fn new(zones: impl IntoIterator<Item = Arc<Zone>>) -> Self {
        Self { zones: zones.into_iter().map(|z| (z.origin().clone(), z)).collect(), generation: 0 }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    pub fn zone(&self, origin: &Name) -> Option<&Arc<Zone>> {
        self.zones.get(origin)
    }

    pub fn zones(&self) -> impl Iterator<Item = &Arc<Zone>> {
        self.zones.values()
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The zone `name` is in: the served zone with the longest matching origin.
    pub fn find(&self, name: &Name) -> Option<&Arc<Zone>> {
        (0..=labels(name)).rev().find_map(|n| self.zones.get(&name.trim_to(n)))
    }

    /// The answer to `qname`/`qtype`, or `None` when no served zone holds the name (REFUSED).
    /// With `dnssec` (the DO bit), a signed zone adds its RRSIGs and NSEC proofs.
    pub fn answer(&self, qname: &Name, qtype: RecordType, dnssec: bool) -> Option<Answer> {
        let first = self.find(qname)?;
        let mut answer = Answer { authoritative: true, dnssec, ..Answer::default() };
        let mut zone = first;
        let mut name = qname.clone();
        for _ in 0..MAX_CHAIN {
            match lookup(zone, &name, qtype, &mut answer) {
                Step::Done => return Some(answer),
                Step::Chase(target) => {
                    // Chains are followed only within the zone they start in, as Knot and NSD
                    // do: data of another zone may be served by another server.
                    if !zone.origin().zone_of(&target) {
                        return Some(answer);
                    }
                    // A target in a zone delegated away from this one is found by the walk.
                    name = target;
                    zone = first;
                }
            }
        }
        Some(answer)
    }
}

/// One step of the RFC 1034 §4.3.2 algorithm for `qname` in `zone`.
fn lookup(zone: &Zone, qname: &Name, qtype: RecordType, out: &mut Answer) -> Step {
    let origin_labels = labels(zone.origin());
    let qlabels = labels(qname);
    // Walk down from the apex: a zone cut or a DNAME on the way decides before the name does.
    let mut encloser = zone.origin().clone();
    let mut found = qlabels == origin_labels;
    for labels in origin_labels + 1..=qlabels {
        let name = qname.trim_to(labels);
        let Some(node) = zone.node(&name) else { break };
        encloser = name;
        let at_qname = labels == qlabels;
        if let Some(ns) = node.get(RecordType::NS) {
            // The parent side answers DS at a cut (RFC 4035 §3.1.4.1).
            if !(at_qname && qtype == RecordType::DS) {
                referral(zone, &encloser, node, ns, out);
                return Step::Done;
            }
        }
        if !at_qname {
            if let Some(step) = dname_step(zone, node, qname, &encloser, out) {
                // The synthesized CNAME is itself the answer to a CNAME query.
                return if qtype == RecordType::CNAME { Step::Done } else { step };
            }
        }
        found = at_qname;
    }
    if found {
        let node = zone.node(qname).unwrap_or_else(|| zone.apex());
        return answer_at(zone, node, qname, qname, qtype, out);
    }
    // The name does not exist: a wildcard at the closest encloser answers for it.
    if let Ok(wildcard) = encloser.prepend_label("*") {
        if let Some(node) = zone.node(&wildcard) {
            // Signed, the answer also proves that no closer name exists (RFC 4035 §3.1.3.3).
            prove_covered(zone, qname, out);
            return answer_at(zone, node, &wildcard, qname, qtype, out);
        }
    }
    // A reverse zone may name the addresses of its subnet itself.
    if let Some(synthesized) = zone.synthesis().and_then(|s| s.lookup(qname)) {
        out.rcode = ResponseCode::NoError;
        match synthesized {
            Synthesized::Host(ptr) if matches!(qtype, RecordType::PTR | RecordType::ANY) => {
                out.answers.push(*ptr);
                return Step::Done;
            }
            _ => return nodata(zone, qname, out),
        }
    }
    out.rcode = ResponseCode::NXDomain;
    push_soa(zone, out);
    // Signed: the name is covered, and so is the wildcard that could have matched it.
    prove_covered(zone, qname, out);
    if let Ok(wildcard) = encloser.prepend_label("*") {
        prove_covered(zone, &wildcard, out);
    }
    Step::Done
}

/// The answer at an existing node `at` (the wildcard's node for a synthesized answer, whose
/// records then take the query's name `owner`).
fn answer_at(zone: &Zone, node: &Node, at: &Name, owner: &Name, qtype: RecordType, out: &mut Answer) -> Step {
    out.rcode = ResponseCode::NoError;
    if qtype == RecordType::ANY {
        // RFC 8482: answer with one RRset rather than all of them.
        return match first_rrset(node) {
            Some(set) => {
                push_set(zone, at, owner, set, Section::Answer, out);
                additional(zone, set, out);
                Step::Done
            }
            None => nodata(zone, at, out),
        };
    }
    if let Some(set) = node.get(qtype) {
        push_set(zone, at, owner, set, Section::Answer, out);
        additional(zone, set, out);
        return Step::Done;
    }
    if let Some(cname) = node.get(RecordType::CNAME) {
        push_set(zone, at, owner, cname, Section::Answer, out);
        if let Some(RData::CNAME(target)) = cname.first().map(|r| &r.data) {
            return Step::Chase(target.0.clone());
        }
        return Step::Done;
    }
    nodata(zone, at, out)
}

/// NOERROR with no answer: the SOA in the authority section (RFC 2308 §2.2) and, signed, the
/// NSEC at `at` showing the type is absent (an empty non-terminal has none; the NSEC that
/// covers it shows it exists).
fn nodata(zone: &Zone, at: &Name, out: &mut Answer) -> Step {
    push_soa(zone, out);
    if let Some(signatures) = signed(zone, out) {
        match signatures.nsec_at(at) {
            Some(nsec) => {
                let nsec = nsec.clone();
                push_set(zone, at, at, std::slice::from_ref(&nsec), Section::Authority, out);
            }
            None => prove_covered(zone, at, out),
        }
    }
    Step::Done
}

/// The SOA of a negative answer, with its RRSIGs when signed.
fn push_soa(zone: &Zone, out: &mut Answer) {
    let soa = zone.negative_soa();
    let origin = zone.origin().clone();
    push_set(zone, &origin, &origin, std::slice::from_ref(&soa), Section::Authority, out);
}

/// Signed: the NSEC that covers `name` (proving it does not exist), once.
fn prove_covered(zone: &Zone, name: &Name, out: &mut Answer) {
    let Some(nsec) = signed(zone, out).and_then(|s| s.nsec_covering(name)).cloned() else { return };
    if out.authorities.iter().any(|r| r.name == nsec.name && r.record_type() == RecordType::NSEC) {
        return;
    }
    let owner = nsec.name.clone();
    push_set(zone, &owner, &owner, std::slice::from_ref(&nsec), Section::Authority, out);
}

/// The zone's signatures when the answer wants them.
fn signed<'z>(zone: &'z Zone, out: &Answer) -> Option<&'z Signatures> {
    if out.dnssec {
        zone.signatures()
    } else {
        None
    }
}

/// The RRset an ANY query gets: the first in type order, so the choice is stable.
fn first_rrset(node: &Node) -> Option<&Arc<Vec<Record>>> {
    node.rrsets().min_by_key(|set| set.first().map(|r| u16::from(r.record_type())).unwrap_or(u16::MAX))
}

/// A delegation: the cut's NS records in the authority section, their addresses as glue, and,
/// signed, the cut's DS or the NSEC proving it has none.
fn referral(zone: &Zone, cut: &Name, node: &Node, ns: &Arc<Vec<Record>>, out: &mut Answer) {
    // AA speaks for the first owner in the answer: a chain that ends at a cut keeps it.
    if out.answers.is_empty() {
        out.authoritative = false;
    }
    out.glue_required = true;
    out.rcode = ResponseCode::NoError;
    out.authorities.extend(ns.iter().cloned());
    if let Some(signatures) = signed(zone, out) {
        match (node.get(RecordType::DS), signatures.nsec_at(cut)) {
            (Some(ds), _) => push_set(zone, cut, cut, ds, Section::Authority, out),
            (None, Some(nsec)) => {
                let nsec = nsec.clone();
                push_set(zone, cut, cut, std::slice::from_ref(&nsec), Section::Authority, out);
            }
            (None, None) => {}
        }
    }
    for record in ns.iter() {
        if let RData::NS(target) = &record.data {
            addresses(zone, &target.0, &mut out.additionals, None);
        }
    }
}

/// A DNAME at an ancestor of `qname`: the DNAME, a CNAME synthesized from it, and the lookup
/// continues at the new name (RFC 6672 §3.3).
fn dname_step(zone: &Zone, node: &Node, qname: &Name, owner: &Name, out: &mut Answer) -> Option<Step> {
    let set = node.get(RecordType::DNAME)?;
    let record = set.first()?;
    let target = dname::target(&record.data)?;
    out.rcode = ResponseCode::NoError;
    push_set(zone, owner, owner, set, Section::Answer, out);
    let keep = labels(qname) - labels(owner);
    let prefix: Vec<&[u8]> = qname.iter().take(keep).collect();
    let synthesized = Name::from_labels(prefix).and_then(|p| p.append_domain(&target));
    match synthesized {
        Ok(new_name) => {
            // The synthesized CNAME is unsigned: validators derive it from the signed DNAME.
            let mut cname = Record::from_rdata(qname.clone(), record.ttl, RData::CNAME(CNAME(new_name.clone())));
            cname.dns_class = record.dns_class;
            out.answers.push(cname);
            Some(Step::Chase(new_name))
        }
        // The substituted name is longer than 255 octets.
        Err(_) => {
            out.rcode = ResponseCode::YXDomain;
            Some(Step::Done)
        }
    }
}

/// Additional-section processing (RFC 1035 §3.3): addresses of the names an NS, MX or SRV
/// answer points at, when this zone holds them (signed, with their RRSIGs).
fn additional(zone: &Zone, set: &[Record], out: &mut Answer) {
    let signatures = signed(zone, out);
    for record in set {
        let target = match &record.data {
            RData::NS(ns) => &ns.0,
            RData::MX(mx) => &mx.exchange,
            RData::SRV(srv) => &srv.target,
            _ => continue,
        };
        addresses(zone, target, &mut out.additionals, signatures);
    }
}

/// The A and AAAA records at `name` in `zone`, if any, added once (with their RRSIGs when
/// `signatures` is given: glue at a referral is never signed).
fn addresses(zone: &Zone, name: &Name, into: &mut Vec<Record>, signatures: Option<&Signatures>) {
    if !zone.origin().zone_of(name) {
        return;
    }
    let Some(node) = zone.node(name) else { return };
    for rtype in [RecordType::A, RecordType::AAAA] {
        if let Some(set) = node.get(rtype) {
            if into.iter().any(|r| r.name == *name && r.record_type() == rtype) {
                continue;
            }
            into.extend(set.iter().cloned());
            if let Some(signatures) = signatures {
                into.extend(signatures.rrsigs(name, rtype).iter().cloned());
            }
        }
    }
}

/// The number of labels in `name`, a leading `*` included (hickory's `num_labels` leaves it
/// out, as RRSIG's label count does).
pub fn labels(name: &Name) -> usize {
    name.iter().count()
}

#[derive(Clone, Copy)]
enum Section {
    Answer,
    Authority,
}

/// Appends `set` (stored at `at`) with each record's owner set to `owner` (the query's name,
/// for wildcards), and its RRSIGs when the answer is signed.
fn push_set(zone: &Zone, at: &Name, owner: &Name, set: &[Record], section: Section, out: &mut Answer) {
    let rrsigs = match (signed(zone, out), set.first()) {
        (Some(signatures), Some(first)) => signatures.rrsigs(at, first.record_type()),
        _ => &[],
    };
    let into = match section {
        Section::Answer => &mut out.answers,
        Section::Authority => &mut out.authorities,
    };
    for record in set.iter().chain(rrsigs) {
        let mut record = record.clone();
        record.name = owner.clone();
        into.push(record);
    }
}
