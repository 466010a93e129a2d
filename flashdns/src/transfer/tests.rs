//! The decisions of `Transfers` request by request: who gets a transfer, what it holds, and how
//! the answers are signed (checked as a client checks them, with hickory's TSIG verifier).

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use base64::Engine as _;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigVerifier, TSigner};

use super::journal::{Journal, JournalEntry};
use super::tsig::{self, KeyRing};
use super::*;

const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=";
const OTHER_SECRET: &str = "b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItMTI=";

fn name(text: &str) -> Name {
    Name::from_str(text).expect("a name")
}

fn soa(serial: u32) -> Record {
    let data = SOA::new(name("ns1.example.test."), name("hostmaster.example.test."), serial, 3600, 600, 86400, 300);
    Record::from_rdata(name("example.test."), 3600, RData::SOA(data))
}

fn transfers() -> Transfers {
    let keys =
        KeyRing::parse(&[format!("xfr.key:hmac-sha256:{SECRET}"), format!("other.key:hmac-sha256:{OTHER_SECRET}")])
            .expect("valid keys");
    let transfers = Transfers::new(keys);
    let records = vec![
        soa(12),
        Record::from_rdata(name("www.example.test."), 60, RData::A(A::new(192, 0, 2, 1))),
        Record::from_rdata(name("www.example.test."), 60, RData::A(A::new(192, 0, 2, 2))),
    ];
    let zone = Arc::new(Zone::build(name("example.test."), records).expect("a zone"));
    let mut journal = Journal::default();
    journal.insert(Arc::new(JournalEntry {
        from: 11,
        to: 12,
        reset: false,
        removed: vec!["www.example.test. 60 IN A 192.0.2.9".into()],
        added: vec!["www.example.test. 60 IN A 192.0.2.2".into()],
    }));
    let secondaries = [crate::model::Secondary { address: "127.0.0.1:5300".into(), key: "xfr.key.".into() }];
    transfers.publish([Arc::new(ZoneTransfer::new(zone, &secondaries, journal))]);
    transfers
}

fn signer(key: &str, secret: &str) -> TSigner {
    let secret = base64::engine::general_purpose::STANDARD.decode(secret).expect("base64");
    TSigner::new(secret, TsigAlgorithm::HmacSha256, name(key), tsig::FUDGE).expect("a signer")
}

fn request(zone: &str, rtype: RecordType, client_serial: Option<u32>) -> Message {
    let mut request = Message::query();
    request.add_query(Query::query(name(zone), rtype));
    if let Some(serial) = client_serial {
        request.add_authority(soa(serial));
    }
    request
}

/// The request as bytes, signed with `signer` if given (and its verifier).
fn send(mut request: Message, signer: Option<&TSigner>) -> (Vec<u8>, Option<TSigVerifier>) {
    let verifier = signer.map(|s| request.finalize(s, tsig::now()).expect("signs").expect("a verifier"));
    (request.to_vec().expect("encodes"), verifier)
}

fn from(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("an IP"), 40000)
}

/// Decodes each message, verifying its TSIG when a verifier is given.
fn receive(messages: &[Vec<u8>], mut verifier: Option<TSigVerifier>) -> Vec<Message> {
    messages
        .iter()
        .map(|bytes| {
            if let Some(verifier) = verifier.as_mut() {
                verifier.verify(bytes).expect("the TSIG verifies");
            }
            Message::from_vec(bytes).expect("decodes")
        })
        .collect()
}

fn serials(messages: &[Message]) -> Vec<u32> {
    messages
        .iter()
        .flat_map(|m| &m.answers)
        .filter_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .collect()
}

#[test]
fn a_secondary_gets_the_zone_signed_by_its_key() {
    let transfers = transfers();
    let (query, verifier) = send(request("example.test.", RecordType::AXFR, None), Some(&signer("xfr.key.", SECRET)));
    let messages = receive(&transfers.transfer(&query, from("127.0.0.1")), verifier);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].metadata.response_code, ResponseCode::NoError);
    assert!(messages[0].metadata.authoritative);
    assert_eq!(messages[0].answers.len(), 4, "SOA, two A, SOA");
    assert_eq!(serials(&messages), vec![12, 12]);
}

#[test]
fn ixfr_sends_the_difference_or_the_soa() {
    let transfers = transfers();
    let key = signer("xfr.key.", SECRET);
    let (query, verifier) = send(request("example.test.", RecordType::IXFR, Some(11)), Some(&key));
    let messages = receive(&transfers.transfer(&query, from("127.0.0.1")), verifier);
    assert_eq!(serials(&messages), vec![12, 11, 12, 12]);
    let answers: Vec<String> = messages[0].answers.iter().map(|r| r.to_string()).collect();
    assert!(answers[2].contains("192.0.2.9") && answers[4].contains("192.0.2.2"), "{answers:#?}");

    let (query, verifier) = send(request("example.test.", RecordType::IXFR, Some(12)), Some(&key));
    assert_eq!(serials(&receive(&transfers.transfer(&query, from("127.0.0.1")), verifier)), vec![12]);

    let (query, verifier) = send(request("example.test.", RecordType::IXFR, None), Some(&key));
    let messages = receive(&transfers.transfer(&query, from("127.0.0.1")), verifier);
    assert_eq!(messages[0].metadata.response_code, ResponseCode::FormErr, "no client SOA");
}

#[test]
fn everyone_else_is_refused() {
    let transfers = transfers();
    let rcode = |messages: &[Vec<u8>]| Message::from_vec(&messages[0]).expect("decodes").metadata.response_code;

    // Unsigned, from the secondary's own address: REFUSED, unsigned.
    let (query, _) = send(request("example.test.", RecordType::AXFR, None), None);
    let messages = transfers.transfer(&query, from("127.0.0.1"));
    assert_eq!(rcode(&messages), ResponseCode::Refused);
    assert!(Message::from_vec(&messages[0]).expect("decodes").signature.is_none());

    // The right key from another address, or another known key from the right one: REFUSED,
    // signed.
    for (key, secret, peer) in [("xfr.key.", SECRET, "192.0.2.200"), ("other.key.", OTHER_SECRET, "127.0.0.1")] {
        let (query, verifier) = send(request("example.test.", RecordType::AXFR, None), Some(&signer(key, secret)));
        let messages = receive(&transfers.transfer(&query, from(peer)), verifier);
        assert_eq!(messages[0].metadata.response_code, ResponseCode::Refused, "{key} from {peer}");
        assert!(messages[0].answers.is_empty());
    }

    // A wrong secret: NOTAUTH with BADSIG, unsigned.
    let (query, _) = send(request("example.test.", RecordType::AXFR, None), Some(&signer("xfr.key.", OTHER_SECRET)));
    let message = Message::from_vec(&transfers.transfer(&query, from("127.0.0.1"))[0]).expect("decodes");
    assert_eq!(message.metadata.response_code, ResponseCode::NotAuth);
    assert_eq!(message.signature.as_ref().and_then(|s| s.data.error), Some(TsigError::BadSig));
    assert!(message.answers.is_empty());

    // A zone not served: NOTAUTH.
    let (query, verifier) = send(request("nowhere.test.", RecordType::AXFR, None), Some(&signer("xfr.key.", SECRET)));
    let messages = receive(&transfers.transfer(&query, from("127.0.0.1")), verifier);
    assert_eq!(messages[0].metadata.response_code, ResponseCode::NotAuth);
}

#[test]
fn a_signed_query_gets_a_signed_answer() {
    let transfers = transfers();
    let (query, verifier) = send(request("example.test.", RecordType::SOA, None), Some(&signer("xfr.key.", SECRET)));
    let mut answer = Message::from_vec(&query).expect("decodes");
    answer.metadata.message_type = hickory_proto::op::MessageType::Response;
    answer.signature = None;
    answer.add_answer(soa(12));
    let signed = transfers.sign_answer(&query, answer.to_vec().expect("encodes"));
    receive(&[signed], verifier);
}
