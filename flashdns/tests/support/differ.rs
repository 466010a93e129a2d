//! What "answered identically" means for the differential tests, and the comparison of two
//! servers over a corpus that prints every difference.
//!
//! # What is compared
//!
//! Every answer is reduced to a [`Normalized`] and two answers agree when their `Normalized`
//! are equal:
//!
//! - the full 12-bit RCODE (header and EDNS bits merged), the opcode, and the header flags QR,
//!   AA, TC, RD, RA, AD and CD;
//! - the question section exactly, case included: RFC 1034 4.1 says it is copied from the query,
//!   and resolvers using 0x20 case randomisation (draft-vixie-dnsext-dns0x20) rely on that;
//! - the answer, authority and additional sections, each as a sorted multiset of records
//!   (owner, type, class, TTL, RDATA): order within a section carries no meaning (RFC 2181
//!   5.1), but a duplicated record is still a difference;
//! - EDNS: whether an OPT record is present, and its version, UDP payload size, DO bit, other
//!   flag bits and options (Knot adds Extended DNS Error 20 "Not Authoritative" to REFUSED).
//!   The OPT record itself is not part of the additional multiset.
//!
//! # What is deliberately not compared, and why
//!
//! - The case of owner names and of names inside RDATA: names compare case-insensitively
//!   (RFC 4343), and which case comes back depends on name compression: Knot points owners of
//!   the answer at the question, so `WwW.example.test A` comes back with owner `WwW.…`.
//!   Names are lowercased, RDATA names in DNSSEC canonical form (RFC 4034 6.2).
//! - The message id (random per query) and the order of records and of sections' contents.
//! - The records of an answer that both servers truncated (TC=1 on both sides): what a
//!   truncated UDP answer carries is the server's choice (RFC 2181 9; the client must retry
//!   over TCP, and RFC 9471 only requires TC when glue does not fit). Knot empties all sections
//!   when the answer itself does not fit, but keeps the NS set and the glue that fit when a
//!   referral's glue overflows; matching that byte for byte would mean matching its name
//!   compression. The header, the TC bit itself, the question and EDNS are still compared, so
//!   a server must truncate exactly when the reference does, and the same queries over TCP
//!   compare the full content.
//!
//! Everything else RFCs leave open is compared, so a server under test has to make Knot's
//! choices: minimal responses (no NS set in the authority section of positive answers), which
//! additional records are added for NS, MX and SRV targets (only A/AAAA of the same zone), how
//! many of them fit in a small UDP answer, the TTL of a CNAME synthesized from a DNAME (the
//! DNAME's TTL), the SOA TTL in negative answers (the smaller of the SOA's TTL and MINIMUM),
//! and ANY answered with one RRset (RFC 8482).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, MessageType};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder, Restrict};

use super::query::{ask, Query};

/// The header flags compared, QR included (an answer must be a response).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub qr: bool,
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    pub ad: bool,
    pub cd: bool,
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.qr, "qr"),
            (self.aa, "aa"),
            (self.tc, "tc"),
            (self.rd, "rd"),
            (self.ra, "ra"),
            (self.ad, "ad"),
            (self.cd, "cd"),
        ];
        let set: Vec<&str> = names.iter().filter(|(on, _)| *on).map(|(_, name)| *name).collect();
        if set.is_empty() {
            f.write_str("(none)")
        } else {
            f.write_str(&set.join(" "))
        }
    }
}

/// One record as compared: lowercase owner, type, class, TTL and RDATA in presentation form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rr {
    pub owner: String,
    pub rtype: String,
    pub class: String,
    pub ttl: u32,
    pub rdata: String,
}

impl fmt::Display for Rr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} {} {}", self.owner, self.ttl, self.class, self.rtype, self.rdata)
    }
}

/// The OPT record of an answer, as compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdnsInfo {
    pub version: u8,
    pub payload: u16,
    pub dnssec_ok: bool,
    /// The flag bits other than DO (must be zero, RFC 6891 6.1.4).
    pub z: u16,
    /// Each option as `code=hex`, EDE as `EDE <info-code> "<extra text>"`, in message order.
    pub options: Vec<String>,
}

impl fmt::Display for EdnsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "version {} udp {}", self.version, self.payload)?;
        if self.dnssec_ok {
            f.write_str(" do")?;
        }
        if self.z != 0 {
            write!(f, " z={:#06x}", self.z)?;
        }
        for option in &self.options {
            write!(f, " [{option}]")?;
        }
        Ok(())
    }
}

/// An answer reduced to what the differential tests compare (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalized {
    /// The full 12-bit RCODE.
    pub rcode: u16,
    pub opcode: u8,
    pub flags: Flags,
    /// `name class type` per question, the name exactly as it came back.
    pub question: Vec<String>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    /// Without the OPT record, which is `edns`.
    pub additional: Vec<Rr>,
    pub edns: Option<EdnsInfo>,
}

/// Reduces a decoded answer to what is compared.
pub fn normalize(m: &Message) -> Normalized {
    let section = |records: &[Record]| {
        let mut rrs: Vec<Rr> = records.iter().map(normalize_record).collect();
        rrs.sort();
        rrs
    };
    Normalized {
        rcode: u16::from(m.response_code),
        opcode: u8::from(m.op_code),
        flags: Flags {
            qr: m.message_type == MessageType::Response,
            aa: m.authoritative,
            tc: m.truncation,
            rd: m.recursion_desired,
            ra: m.recursion_available,
            ad: m.authentic_data,
            cd: m.checking_disabled,
        },
        question: m
            .queries
            .iter()
            .map(|q| format!("{} {} {}", q.name().to_ascii(), q.query_class(), q.query_type()))
            .collect(),
        answer: section(&m.answers),
        authority: section(&m.authorities),
        additional: section(&m.additionals),
        edns: m.edns.as_ref().map(normalize_edns),
    }
}

/// The differences between two normalized answers, one line per field (`a` first), empty when
/// they agree.
pub fn diff(a: &Normalized, b: &Normalized) -> Vec<String> {
    let mut lines = Vec::new();
    if a.rcode != b.rcode {
        lines.push(format!("rcode: a={} b={}", rcode_name(a.rcode), rcode_name(b.rcode)));
    }
    if a.opcode != b.opcode {
        lines.push(format!("opcode: a={} b={}", a.opcode, b.opcode));
    }
    if a.flags != b.flags {
        lines.push(format!("flags: a={} b={}", a.flags, b.flags));
    }
    if a.question != b.question {
        lines.push(format!("question: a={:?} b={:?}", a.question, b.question));
    }
    if a.edns != b.edns {
        let show = |e: &Option<EdnsInfo>| e.as_ref().map_or("(no OPT)".to_string(), ToString::to_string);
        lines.push(format!("edns: a={} b={}", show(&a.edns), show(&b.edns)));
    }
    // Both truncated: the records are the server's choice (see the module documentation).
    if !(a.flags.tc && b.flags.tc) {
        for (name, left, right) in [
            ("answer", &a.answer, &b.answer),
            ("authority", &a.authority, &b.authority),
            ("additional", &a.additional, &b.additional),
        ] {
            for rr in multiset_minus(left, right) {
                lines.push(format!("{name}: only a: {rr}"));
            }
            for rr in multiset_minus(right, left) {
                lines.push(format!("{name}: only b: {rr}"));
            }
        }
    }
    lines
}

/// Asks both servers `q` and describes how their answers differ, or `None` when they agree.
/// Failures to get an answer (timeouts, undecodable messages) are compared too: both timing out
/// is agreement, anything else different is a difference.
pub fn compare_one(a: SocketAddr, b: SocketAddr, q: &Query) -> Option<String> {
    let left = ask(a, q).map(|m| normalize(&m)).map_err(|e| e.replace(&a.to_string(), "<server>"));
    let right = ask(b, q).map(|m| normalize(&m)).map_err(|e| e.replace(&b.to_string(), "<server>"));
    let lines = match (&left, &right) {
        (Ok(x), Ok(y)) => diff(x, y),
        (Err(x), Err(y)) if x == y => Vec::new(),
        (x, y) => vec![format!("outcome: a={} b={}", outcome(x), outcome(y))],
    };
    if lines.is_empty() {
        return None;
    }
    let mut text = format!("query {q}");
    for line in lines {
        text.push_str("\n    ");
        text.push_str(&line);
    }
    Some(text)
}

/// Asks `a` and `b` every query of `corpus`; one description per query answered differently,
/// in corpus order.
pub fn compare(a: SocketAddr, b: SocketAddr, corpus: &[Query]) -> Vec<String> {
    corpus.iter().filter_map(|q| compare_one(a, b, q)).collect()
}

fn outcome(result: &Result<Normalized, String>) -> String {
    match result {
        Ok(n) => format!("answer {} {}", rcode_name(n.rcode), n.flags),
        Err(e) => format!("no answer ({e})"),
    }
}

fn rcode_name(rcode: u16) -> String {
    let code = <hickory_proto::op::ResponseCode as From<u16>>::from(rcode);
    format!("{}({rcode})", code.to_str().to_uppercase())
}

/// The records of `left` not matched one for one in `right` (both sorted).
fn multiset_minus<'r>(left: &'r [Rr], right: &[Rr]) -> Vec<&'r Rr> {
    let mut counts: BTreeMap<&Rr, usize> = BTreeMap::new();
    for rr in right {
        *counts.entry(rr).or_default() += 1;
    }
    left.iter()
        .filter(|rr| match counts.get_mut(rr) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .collect()
}

fn normalize_record(record: &Record) -> Rr {
    Rr {
        owner: record.name.to_lowercase().to_ascii(),
        rtype: record.record_type().to_string(),
        class: record.dns_class.to_string(),
        ttl: record.ttl,
        rdata: rdata_text(&record.data),
    }
}

fn normalize_edns(edns: &Edns) -> EdnsInfo {
    let options = edns
        .options()
        .as_ref()
        .iter()
        .map(|(code, option)| {
            let code = u16::from(*code);
            let bytes = Vec::<u8>::try_from(option).unwrap_or_default();
            // RFC 8914: INFO-CODE, then UTF-8 EXTRA-TEXT.
            if code == 15 && bytes.len() >= 2 {
                let info = u16::from_be_bytes([bytes[0], bytes[1]]);
                format!("EDE {info} {:?}", String::from_utf8_lossy(&bytes[2..]))
            } else {
                format!("{code}={}", hex(&bytes))
            }
        })
        .collect();
    EdnsInfo {
        version: edns.version(),
        payload: edns.max_payload(),
        dnssec_ok: edns.flags().dnssec_ok,
        z: edns.flags().z,
        options,
    }
}

/// RDATA in presentation form, names lowercased. TXT and CAA are rendered here from the wire
/// because hickory's `Display` joins TXT strings (`"a" "b"` and `"ab"` would look alike);
/// types hickory does not know (DNAME among them) are decoded here or shown as RFC 3597
/// `\# len hex`, so that no two different RDATA ever print alike.
fn rdata_text(data: &RData) -> String {
    if let RData::Unknown { code, rdata } = data {
        if *code == RecordType::DNAME {
            // RFC 6672 2.5: the DNAME target is never compressed, so the RDATA is the name.
            let mut decoder = BinDecoder::new(&rdata.anything);
            if let Ok(target) = Name::read(&mut decoder) {
                if decoder.is_empty() {
                    return target.to_lowercase().to_ascii();
                }
            }
        }
        return generic(&rdata.anything);
    }
    let Some(wire) = canonical_wire(data) else { return format!("{data} (unencodable)") };
    match data.record_type() {
        RecordType::TXT => character_strings(&wire).unwrap_or_else(|| generic(&wire)),
        RecordType::CAA => caa_text(&wire).unwrap_or_else(|| generic(&wire)),
        RecordType::A
        | RecordType::AAAA
        | RecordType::NS
        | RecordType::CNAME
        | RecordType::PTR
        | RecordType::MX
        | RecordType::SOA
        | RecordType::SRV
        | RecordType::SSHFP
        | RecordType::TLSA => {
            let len = u16::try_from(wire.len()).unwrap_or(u16::MAX);
            match RData::read(&mut BinDecoder::new(&wire), data.record_type(), Restrict::new(len)) {
                Ok(canonical) => canonical.to_string(),
                Err(_) => generic(&wire),
            }
        }
        _ => generic(&wire),
    }
}

/// The RDATA's wire form with its names lowercased and uncompressed (RFC 4034 6.2).
fn canonical_wire(data: &RData) -> Option<Vec<u8>> {
    let mut wire = Vec::new();
    let mut encoder = BinEncoder::new(&mut wire);
    encoder.set_canonical_form(true);
    data.emit(&mut encoder).ok()?;
    Some(wire)
}

/// `"…" "…"`: one quoted string per character-string, `"` and `\` escaped, anything not
/// printable as `\DDD` (RFC 1035 5.1).
fn character_strings(wire: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    let mut rest = wire;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if tail.len() < len {
            return None;
        }
        parts.push(quoted(&tail[..len]));
        rest = &tail[len..];
    }
    Some(parts.join(" "))
}

fn caa_text(wire: &[u8]) -> Option<String> {
    let (&flags, rest) = wire.split_first()?;
    let (&tag_len, rest) = rest.split_first()?;
    let tag_len = usize::from(tag_len);
    if rest.len() < tag_len {
        return None;
    }
    let (tag, value) = rest.split_at(tag_len);
    Some(format!("{flags} {} {}", String::from_utf8_lossy(tag), quoted(value)))
}

fn quoted(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(char::from(b));
            }
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\{b:03}");
            }
        }
    }
    s.push('"');
    s
}

fn generic(bytes: &[u8]) -> String {
    format!("\\# {} {}", bytes.len(), hex(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
