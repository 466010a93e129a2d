//! The authoritative answer to one question (RFC 1034 §4.3.2, with RFC 2308 negative answers,
//! RFC 4592 wildcards, RFC 6672 DNAME and RFC 8482 ANY): which records go into which section,
//! the rcode and the AA flag. Pure: no I/O, no wire format.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::dname;
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
}

/// The zones a server answers for, by origin.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    zones: HashMap<Name, Arc<Zone>>,
}

/// What one step of a lookup leads to.
enum Step {
    Done,
    /// Continue at this name (the target of a CNAME, or a name a DNAME synthesized).
    Chase(Name),
}

impl Catalog {
    pub fn new(zones: impl IntoIterator<Item = Arc<Zone>>) -> Self {
        Self { zones: zones.into_iter().map(|z| (z.origin().clone(), z)).collect() }
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
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Option<Answer> {
        let first = self.find(qname)?;
        let mut answer = Answer { authoritative: true, ..Answer::default() };
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
                referral(zone, ns, out);
                return Step::Done;
            }
        }
        if !at_qname {
            if let Some(step) = dname_step(node, qname, &encloser, out) {
                // The synthesized CNAME is itself the answer to a CNAME query.
                return if qtype == RecordType::CNAME { Step::Done } else { step };
            }
        }
        found = at_qname;
    }
    if found {
        let node = zone.node(qname).unwrap_or_else(|| zone.apex());
        return answer_at(zone, node, qname, qtype, out);
    }
    // The name does not exist: a wildcard at the closest encloser answers for it.
    if let Ok(wildcard) = encloser.prepend_label("*") {
        if let Some(node) = zone.node(&wildcard) {
            return answer_at(zone, node, qname, qtype, out);
        }
    }
    // A reverse zone may name the addresses of its subnet itself.
    if let Some(synthesized) = zone.synthesis().and_then(|s| s.lookup(qname)) {
        out.rcode = ResponseCode::NoError;
        match synthesized {
            Synthesized::Host(ptr) if matches!(qtype, RecordType::PTR | RecordType::ANY) => {
                out.answers.push(ptr);
                return Step::Done;
            }
            _ => return nodata(zone, out),
        }
    }
    out.rcode = ResponseCode::NXDomain;
    out.authorities.push(zone.negative_soa());
    Step::Done
}

/// The answer at an existing node (or a wildcard's, with the owner rewritten to `owner`).
fn answer_at(zone: &Zone, node: &Node, owner: &Name, qtype: RecordType, out: &mut Answer) -> Step {
    out.rcode = ResponseCode::NoError;
    if qtype == RecordType::ANY {
        // RFC 8482: answer with one RRset rather than all of them.
        return match first_rrset(node) {
            Some(set) => {
                push_as(owner, set, &mut out.answers);
                additional(zone, set, out);
                Step::Done
            }
            None => nodata(zone, out),
        };
    }
    if let Some(set) = node.get(qtype) {
        push_as(owner, set, &mut out.answers);
        additional(zone, set, out);
        return Step::Done;
    }
    if let Some(cname) = node.get(RecordType::CNAME) {
        push_as(owner, cname, &mut out.answers);
        if let Some(RData::CNAME(target)) = cname.first().map(|r| &r.data) {
            return Step::Chase(target.0.clone());
        }
        return Step::Done;
    }
    nodata(zone, out)
}

/// NOERROR with no answer: the SOA in the authority section (RFC 2308 §2.2).
fn nodata(zone: &Zone, out: &mut Answer) -> Step {
    out.authorities.push(zone.negative_soa());
    Step::Done
}

/// The RRset an ANY query gets: the first in type order, so the choice is stable.
fn first_rrset(node: &Node) -> Option<&Arc<Vec<Record>>> {
    node.rrsets().min_by_key(|set| set.first().map(|r| u16::from(r.record_type())).unwrap_or(u16::MAX))
}

/// A delegation: the cut's NS records in the authority section, their addresses as glue.
fn referral(zone: &Zone, ns: &Arc<Vec<Record>>, out: &mut Answer) {
    // AA speaks for the first owner in the answer: a chain that ends at a cut keeps it.
    if out.answers.is_empty() {
        out.authoritative = false;
    }
    out.glue_required = true;
    out.rcode = ResponseCode::NoError;
    out.authorities.extend(ns.iter().cloned());
    for record in ns.iter() {
        if let RData::NS(target) = &record.data {
            addresses(zone, &target.0, &mut out.additionals);
        }
    }
}

/// A DNAME at an ancestor of `qname`: the DNAME, a CNAME synthesized from it, and the lookup
/// continues at the new name (RFC 6672 §3.3).
fn dname_step(node: &Node, qname: &Name, owner: &Name, out: &mut Answer) -> Option<Step> {
    let set = node.get(RecordType::DNAME)?;
    let record = set.first()?;
    let target = dname::target(&record.data)?;
    out.rcode = ResponseCode::NoError;
    out.answers.extend(set.iter().cloned());
    let keep = labels(qname) - labels(owner);
    let prefix: Vec<&[u8]> = qname.iter().take(keep).collect();
    let synthesized = Name::from_labels(prefix).and_then(|p| p.append_domain(&target));
    match synthesized {
        Ok(new_name) => {
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
/// answer points at, when this zone holds them.
fn additional(zone: &Zone, set: &[Record], out: &mut Answer) {
    for record in set {
        let target = match &record.data {
            RData::NS(ns) => &ns.0,
            RData::MX(mx) => &mx.exchange,
            RData::SRV(srv) => &srv.target,
            _ => continue,
        };
        addresses(zone, target, &mut out.additionals);
    }
}

/// The A and AAAA records at `name` in `zone`, if any, added once.
fn addresses(zone: &Zone, name: &Name, into: &mut Vec<Record>) {
    if !zone.origin().zone_of(name) {
        return;
    }
    let Some(node) = zone.node(name) else { return };
    for rtype in [RecordType::A, RecordType::AAAA] {
        if let Some(set) = node.get(rtype) {
            for record in set.iter() {
                if !into.iter().any(|r| r.name == record.name && r.data == record.data) {
                    into.push(record.clone());
                }
            }
        }
    }
}

/// The number of labels in `name`, a leading `*` included (hickory's `num_labels` leaves it
/// out, as RRSIG's label count does).
pub fn labels(name: &Name) -> usize {
    name.iter().count()
}

/// Appends `set` with each record's owner set to `owner` (the query's name, for wildcards).
fn push_as(owner: &Name, set: &[Record], into: &mut Vec<Record>) {
    for record in set {
        let mut record = record.clone();
        record.name = owner.clone();
        into.push(record);
    }
}
