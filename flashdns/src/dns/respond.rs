//! From a query's bytes to the response's bytes: decoding (FORMERR for what does not parse,
//! silence for what is not even a header), opcodes, classes, EDNS(0) (RFC 6891), the answer
//! from the catalog, and truncation to what the transport carries (RFC 1035 §4.2.1, RFC 2181
//! §9). Pure: the transports call it. TSIG and zone transfers are left to the caller
//! (`Deferred`, `crate::transfer`).

use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::lookup::{Answer, Catalog};

/// The largest UDP response we send whatever a client offers: 1232 bytes avoids IP
/// fragmentation on every path (DNS Flag Day 2020), and is what Knot and NSD default to.
pub const MAX_UDP_PAYLOAD: u16 = 1232;
/// A query longer than this is not a query (the longest question with OPT and TSIG fits).
pub const MAX_QUERY_BYTES: usize = 4096;

/// The Extended DNS Error option (RFC 8914) and its "Not Authoritative" code.
const EDE_OPTION: u16 = 15;
const EDE_NOT_AUTHORITATIVE: u16 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// TCP and DNS over TLS: no size limit but the message's own.
    Stream,
}

/// What became of one query, for metrics and logs.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub rcode: ResponseCode,
    /// The zone that answered, if one did.
    pub zone: Option<Name>,
    pub truncated: bool,
}

/// What the caller does beyond sending the response: TSIG and zone transfers are
/// `crate::transfer`'s, not answered here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deferred {
    /// The query carries a TSIG record: the response is to be signed (or replaced by the TSIG
    /// error).
    pub signed: bool,
    /// An AXFR or IXFR over a stream, answered NOTIMP here for callers that do not transfer.
    pub transfer: bool,
    /// An answer from the zones to an unsigned query: the same bytes asked of the same catalog
    /// get the same response, so the caller may keep it (`transport::cache`).
    pub cacheable: bool,
}

/// The response to `query`, or `None` when nothing should be sent (not a DNS query at all).
pub fn respond(catalog: &Catalog, query: &[u8], transport: Transport) -> Option<(Vec<u8>, Outcome)> {
    respond_deferring(catalog, query, transport).map(|(bytes, outcome, _)| (bytes, outcome))
}

/// `respond`, and what it leaves to the caller.
pub fn respond_deferring(
    catalog: &Catalog,
    query: &[u8],
    transport: Transport,
) -> Option<(Vec<u8>, Outcome, Deferred)> {
    if query.len() > MAX_QUERY_BYTES {
        return None;
    }
    let header = Header::read(&mut BinDecoder::new(query)).ok()?;
    if header.metadata.message_type == MessageType::Response {
        // Answering a response invites reflection loops.
        return None;
    }
    let request = match Message::from_vec(query) {
        Ok(request) => request,
        Err(_) => {
            let (bytes, outcome) = error(&header, ResponseCode::FormErr, None);
            return Some((bytes, outcome, Deferred::default()));
        }
    };
    let (bytes, outcome, answered) = respond_to(catalog, &header, &request, transport)?;
    let signed = request.signature.is_some();
    let transfer = transport == Transport::Stream
        && outcome.rcode == ResponseCode::NotImp
        && request.metadata.op_code == OpCode::Query
        && request.queries.first().is_some_and(|q| matches!(q.query_type, RecordType::AXFR | RecordType::IXFR));
    Some((bytes, outcome, Deferred { signed, transfer, cacheable: answered && !signed }))
}

/// The response to a decoded query, and whether it is an answer from the zones (not an error).
fn respond_to(
    catalog: &Catalog,
    header: &Header,
    request: &Message,
    transport: Transport,
) -> Option<(Vec<u8>, Outcome, bool)> {
    let refuse = |rcode| {
        let (bytes, outcome) = error(header, rcode, Some(request));
        Some((bytes, outcome, false))
    };
    if request.metadata.op_code != OpCode::Query {
        return refuse(ResponseCode::NotImp);
    }
    if request.queries.len() != 1 {
        return refuse(ResponseCode::FormErr);
    }
    if let Some(edns) = &request.edns {
        if edns.version() > 0 {
            return refuse(ResponseCode::BADVERS);
        }
    }
    let question = &request.queries[0];
    let qtype = question.query_type;
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) && transport == Transport::Udp {
        // Zone transfers need a stream (RFC 5936 §4.2).
        return refuse(ResponseCode::FormErr);
    }
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR | RecordType::OPT) {
        return refuse(ResponseCode::NotImp);
    }
    let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    let limit = size_limit(request, transport);
    let answer = if question.query_class != DNSClass::IN {
        None
    } else if is_health(&question.name) {
        Some(health_answer(question, qtype))
    } else {
        catalog.answer(&question.name, qtype, dnssec_ok)
    };
    let zone = catalog.find(&question.name).map(|z| z.origin().clone());
    let mut answer = answer.unwrap_or(Answer { rcode: ResponseCode::Refused, ..Answer::default() });
    let mut response = base(request);
    if answer.rcode == ResponseCode::Refused {
        if let Some(edns) = response.edns.as_mut() {
            // RFC 8914: say why, as Knot does (Extended DNS Error 20, "Not Authoritative").
            edns.options_mut().insert(EdnsOption::Unknown(EDE_OPTION, EDE_NOT_AUTHORITATIVE.to_be_bytes().to_vec()));
        }
    }
    response.metadata.authoritative = answer.authoritative;
    response.metadata.response_code = answer.rcode;
    response.answers = std::mem::take(&mut answer.answers);
    response.authorities = std::mem::take(&mut answer.authorities);
    response.additionals = std::mem::take(&mut answer.additionals);
    let rcode = response.metadata.response_code;
    let (bytes, truncated) = encode_within(response, limit, answer.glue_required)?;
    let outcome = Outcome { rcode, zone: if rcode == ResponseCode::Refused { None } else { zone }, truncated };
    Some((bytes, outcome, true))
}

/// `health.local.` answers A 127.0.0.1 (PLATFORM.md): a probe that needs no zone.
fn is_health(name: &Name) -> bool {
    name.num_labels() == 2 && name.to_ascii().eq_ignore_ascii_case("health.local.")
}

fn health_answer(question: &Query, qtype: RecordType) -> Answer {
    let mut answer = Answer { authoritative: true, ..Answer::default() };
    if matches!(qtype, RecordType::A | RecordType::ANY) {
        answer.answers.push(Record::from_rdata(question.name.clone(), 0, RData::A(A(Ipv4Addr::LOCALHOST))));
    }
    answer
}

/// A response to `request` with its id, opcode, RD flag, question and (if asked) OPT.
fn base(request: &Message) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.queries = request.queries.clone();
    if let Some(asked) = &request.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        edns.set_dnssec_ok(asked.flags().dnssec_ok);
        response.edns = Some(edns);
    }
    response
}

/// An error response. With a decoded request it carries its question and OPT; without one
/// only the header's id and opcode survive.
fn error(header: &Header, rcode: ResponseCode, request: Option<&Message>) -> (Vec<u8>, Outcome) {
    let mut response = match request {
        Some(request) => base(request),
        None => {
            let mut response = Message::response(header.metadata.id, header.metadata.op_code);
            response.metadata.recursion_desired = header.metadata.recursion_desired;
            response
        }
    };
    response.metadata.response_code = rcode;
    if rcode == ResponseCode::BADVERS && response.edns.is_none() {
        response.edns = Some(Edns::new());
    }
    // Only a single question is echoed: a query of many questions is itself the error, and
    // echoing them all could make the error larger than the client may receive (512 bytes
    // over UDP without EDNS).
    if response.queries.len() > 1 {
        response.queries.clear();
    }
    // A header alone always encodes; an empty vector would be silence, which is also allowed.
    let mut bytes = response.to_vec().unwrap_or_default();
    if bytes.len() > 512 {
        response.queries.clear();
        bytes = response.to_vec().unwrap_or_default();
    }
    (bytes, Outcome { rcode, zone: None, truncated: false })
}

/// How large the response may be: 512 bytes over UDP without EDNS, the client's payload size
/// (at least 512, at most ours) with it, 65535 over a stream.
fn size_limit(request: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Stream => u16::MAX as usize,
        Transport::Udp => match &request.edns {
            Some(edns) => edns.max_payload().clamp(512, MAX_UDP_PAYLOAD) as usize,
            None => 512,
        },
    }
}

/// Encodes `response`; if it is too large, the additional section is refilled RRset by RRset
/// in order, each kept if it still fits and skipped if not (first fit, as Knot does: RFC 2181
/// §9 makes additional data optional, but a referral that lost glue is marked TC, RFC 9471);
/// if the answer itself does not fit, everything but the question goes and TC is set, so the
/// client retries over TCP.
fn encode_within(mut response: Message, limit: usize, glue_required: bool) -> Option<(Vec<u8>, bool)> {
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some((bytes, false));
    }
    let additionals = std::mem::take(&mut response.additionals);
    let mut best = response.to_vec().ok()?;
    if best.len() > limit {
        response.answers.clear();
        response.authorities.clear();
        response.metadata.truncation = true;
        return Some((response.to_vec().ok()?, true));
    }
    let mut lost_glue = false;
    let mut rest = additionals.as_slice();
    while let Some(first) = rest.first() {
        let len = rest.iter().take_while(|r| r.record_type() == first.record_type() && r.name == first.name).count();
        let (rrset, tail) = rest.split_at(len);
        rest = tail;
        response.additionals.extend_from_slice(rrset);
        match response.to_vec() {
            Ok(bytes) if bytes.len() <= limit => best = bytes,
            _ => {
                response.additionals.truncate(response.additionals.len() - len);
                lost_glue = true;
            }
        }
    }
    if lost_glue && glue_required {
        response.metadata.truncation = true;
        return Some((response.to_vec().ok()?, true));
    }
    Some((best, false))
}
