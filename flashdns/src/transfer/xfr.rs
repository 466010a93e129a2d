//! What a transfer sends, without I/O: the records of an AXFR (RFC 5936: the SOA first and
//! last, every record between), of an IXFR (RFC 1995: the condensed difference between the
//! client's serial and ours, a single SOA when it is current, the whole zone when the journal
//! cannot tell), and their split into messages of at most `MAX_MESSAGE_BYTES`.

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::journal::{self, Journal};
use crate::dns::Zone;
use crate::store::serial_newer;

/// The largest message of a transfer we build (before its TSIG): large enough to need few
/// messages, small enough that one lost connection wastes little.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Room left in each message for the header, the question, an OPT and the TSIG.
const OVERHEAD_BYTES: usize = 512;

/// How an IXFR is answered (a metrics label too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The whole zone (AXFR, or an IXFR the journal cannot answer).
    Full,
    /// The difference since the client's serial.
    Diff,
    /// The client is current: our SOA alone.
    Current,
}

impl Style {
    pub fn label(self) -> &'static str {
        match self {
            Style::Full => "full",
            Style::Diff => "diff",
            Style::Current => "current",
        }
    }
}

/// The zone's SOA, then every other record (in canonical order; a signed zone's RRSIGs and
/// NSECs too), then the SOA again.
pub fn axfr(zone: &Zone) -> Vec<Record> {
    let soa = zone.soa().clone();
    let signatures = zone.signatures().into_iter().flat_map(|s| s.records());
    let mut rest: Vec<&Record> =
        zone.records().filter(|r| r.record_type() != RecordType::SOA).chain(signatures).collect();
    rest.sort();
    let mut records = Vec::with_capacity(rest.len() + 2);
    records.push(soa.clone());
    records.extend(rest.into_iter().cloned());
    records.push(soa);
    records
}

/// The answer to an IXFR from serial `client`: our SOA alone if the client is current (or
/// ahead), the condensed difference if the journal leads from its serial to ours, else the
/// whole zone (always for a signed zone: the journal holds no signatures).
pub fn ixfr(zone: &Zone, journal: &Journal, client: u32) -> (Vec<Record>, Style) {
    let current = zone.serial();
    if client == current || serial_newer(client, current) {
        return (vec![zone.soa().clone()], Style::Current);
    }
    let path = if zone.signatures().is_some() { None } else { journal.path(client, current) };
    let Some(path) = path else {
        return (axfr(zone), Style::Full);
    };
    let (removed, added) = journal::condense(&path);
    let parse = |lines: Vec<String>| -> Option<Vec<Record>> {
        lines.iter().map(|line| journal::parse_line(zone.origin(), line).ok()).collect()
    };
    let (Some(removed), Some(added)) = (parse(removed), parse(added)) else {
        tracing::warn!(zone = %zone.origin(), "a journal entry does not read back; sending the whole zone");
        return (axfr(zone), Style::Full);
    };
    let soa = zone.soa().clone();
    let mut records = Vec::with_capacity(removed.len() + added.len() + 4);
    records.push(soa.clone());
    records.push(with_serial(&soa, client));
    records.extend(removed);
    records.push(soa.clone());
    records.extend(added);
    records.push(soa);
    (records, Style::Diff)
}

/// `soa` as it was at `serial`: between resets only the serial changes.
fn with_serial(soa: &Record, serial: u32) -> Record {
    let mut old = soa.clone();
    if let RData::SOA(data) = &soa.data {
        old.data = RData::SOA(SOA::new(
            data.mname.clone(),
            data.rname.clone(),
            serial,
            data.refresh,
            data.retry,
            data.expire,
            data.minimum,
        ));
    }
    old
}

/// The response messages carrying `records` in order: each at most about
/// `MAX_MESSAGE_BYTES` (a single larger record goes alone), authoritative, with the request's
/// id, the question in the first (RFC 5936 §2.2.1) and an OPT in each if the request had one.
pub fn messages(request: &Message, records: Vec<Record>) -> Vec<Message> {
    let mut messages = Vec::new();
    let mut current = start(request, true);
    let mut size = 0;
    for record in records {
        let len = record.to_bytes().map_or(MAX_MESSAGE_BYTES, |b| b.len());
        if !current.answers.is_empty() && size + len > MAX_MESSAGE_BYTES - OVERHEAD_BYTES {
            messages.push(std::mem::replace(&mut current, start(request, false)));
            size = 0;
        }
        size += len;
        current.answers.push(record);
    }
    messages.push(current);
    messages
}

fn start(request: &Message, first: bool) -> Message {
    let mut message = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    message.metadata.authoritative = true;
    if first {
        message.queries = request.queries.clone();
    }
    if request.edns.is_some() {
        let mut edns = hickory_proto::op::Edns::new();
        edns.set_max_payload(crate::dns::respond::MAX_UDP_PAYLOAD);
        message.edns = Some(edns);
    }
    message
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::Arc;

    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::{A, TXT};
    use hickory_proto::rr::Name;

    use super::journal::JournalEntry;
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_str(text).expect("a name")
    }

    fn zone(serial: u32, hosts: u8) -> Zone {
        let origin = name("example.test.");
        let soa = SOA::new(name("ns1.example.test."), name("hostmaster.example.test."), serial, 3600, 600, 86400, 300);
        let mut records = vec![Record::from_rdata(origin.clone(), 3600, RData::SOA(soa))];
        for n in 0..hosts {
            records.push(Record::from_rdata(name(&format!("h{n}.example.test.")), 60, RData::A(A::new(192, 0, 2, n))));
        }
        Zone::build(origin, records).expect("a zone")
    }

    fn serials(records: &[Record]) -> Vec<u32> {
        records
            .iter()
            .filter_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.serial),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn axfr_is_framed_by_the_soa() {
        let records = axfr(&zone(5, 3));
        assert_eq!(records.len(), 5);
        assert_eq!(serials(&records), vec![5, 5]);
        assert_eq!(records[0].record_type(), RecordType::SOA);
        assert_eq!(records[4].record_type(), RecordType::SOA);
    }

    #[test]
    fn ixfr_sends_the_difference_the_soa_alone_or_everything() {
        let zone = zone(12, 3);
        let mut journal = Journal::default();
        journal.insert(Arc::new(JournalEntry {
            from: 10,
            to: 11,
            reset: false,
            removed: vec!["h9.example.test. 60 IN A 192.0.2.9".into()],
            added: vec!["h1.example.test. 60 IN A 192.0.2.1".into()],
        }));
        journal.insert(Arc::new(JournalEntry {
            from: 11,
            to: 12,
            reset: false,
            removed: vec![],
            added: vec!["h2.example.test. 60 IN A 192.0.2.2".into()],
        }));
        let (records, style) = ixfr(&zone, &journal, 10);
        assert_eq!(style, Style::Diff);
        assert_eq!(serials(&records), vec![12, 10, 12, 12]);
        assert_eq!(records.len(), 7, "SOA, SOA old, 1 removed, SOA new, 2 added, SOA: {records:?}");
        assert_eq!(records[2].name, name("h9.example.test."));

        assert_eq!(ixfr(&zone, &journal, 12), (vec![zone.soa().clone()], Style::Current));
        assert_eq!(ixfr(&zone, &journal, 13).1, Style::Current, "a client ahead of us is told our SOA");
        let (records, style) = ixfr(&zone, &journal, 9);
        assert_eq!(style, Style::Full);
        assert_eq!(records.len(), 5);
    }

    #[test]
    fn large_transfers_are_split_and_keep_their_order() {
        let zone = zone(1, 200);
        let mut request = Message::query();
        request.add_query(Query::query(name("example.test."), RecordType::AXFR));
        // Large TXT records force several messages.
        let mut records = axfr(&zone);
        let big = TXT::new(vec!["x".repeat(255); 8]);
        for n in 0..40 {
            records.insert(1, Record::from_rdata(name(&format!("t{n}.example.test.")), 60, RData::TXT(big.clone())));
        }
        let all = records.clone();
        let messages = messages(&request, records);
        assert!(messages.len() > 2, "{} messages", messages.len());
        for (i, message) in messages.iter().enumerate() {
            let bytes = message.to_vec().expect("encodes");
            assert!(bytes.len() <= MAX_MESSAGE_BYTES, "message {i} is {} bytes", bytes.len());
            assert_eq!(message.queries.len(), usize::from(i == 0));
            assert!(message.metadata.authoritative);
        }
        let sent: Vec<Record> = messages.into_iter().flat_map(|m| m.answers).collect();
        assert_eq!(sent, all);
    }
}
