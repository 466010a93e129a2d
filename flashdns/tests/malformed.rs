//! Malformed packets never crash flashdns: a corpus of broken queries and random bytes, over
//! UDP and TCP to a running server (and many more straight into the engine), each answered
//! with FORMERR, NOTIMP or REFUSED, or not at all; the server answers real queries throughout.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use common::{dig, Stack};
use flashdns::dns::{respond, Catalog, Transport};
use hickory_proto::op::Message;

/// A query for `www.dig.test. A` as a client would send it (id 0x1234, RD).
const GOOD: &[u8] = &[
    0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'w', b'w', 3, b'd', b'i', b'g', 4, b't', b'e', b's', b't', 0,
    0, 1, 0, 1,
];

/// Hand-broken queries, each named for what is wrong with it.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut cases: Vec<(&'static str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one byte", vec![0x12]),
        ("header only, no question", GOOD[..12].to_vec()),
        ("question cut short", GOOD[..20].to_vec()),
        ("type and class missing", GOOD[..26].to_vec()),
    ];
    let mut two_questions = GOOD.to_vec();
    two_questions[5] = 2;
    cases.push(("qdcount 2 with one question", two_questions));
    // Ten questions, no EDNS: the FORMERR must still fit 512 bytes (a fuzzer found 594).
    let mut ten = GOOD[..12].to_vec();
    ten[5] = 10;
    for _ in 0..10 {
        ten.extend_from_slice(&[40]);
        ten.extend_from_slice(&[b'a'; 40]);
        ten.extend_from_slice(&[4, b't', b'e', b's', b't', 0, 0, 1, 0, 1]);
    }
    cases.push(("ten long questions", ten));
    let mut label_too_long = GOOD.to_vec();
    label_too_long[12] = 70;
    cases.push(("label length beyond the packet", label_too_long));
    let mut pointer_loop = GOOD[..12].to_vec();
    pointer_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    cases.push(("compression pointer to itself", pointer_loop));
    let mut forward_pointer = GOOD[..12].to_vec();
    forward_pointer.extend_from_slice(&[0xc0, 200, 0, 1, 0, 1]);
    cases.push(("compression pointer past the end", forward_pointer));
    let mut reserved_label = GOOD.to_vec();
    reserved_label[12] = 0x80;
    cases.push(("reserved label type 0b10", reserved_label));
    let mut answers_claimed = GOOD.to_vec();
    answers_claimed[7] = 5;
    cases.push(("ancount 5, no answers", answers_claimed));
    let mut opcode = GOOD.to_vec();
    opcode[2] = 0x0f << 3;
    cases.push(("opcode 15", opcode));
    let mut update = GOOD.to_vec();
    update[2] = 5 << 3;
    cases.push(("UPDATE", update));
    let mut response = GOOD.to_vec();
    response[2] |= 0x80;
    cases.push(("a response, not a query", response));
    let mut chaos = GOOD.to_vec();
    let len = chaos.len();
    chaos[len - 1] = 3;
    cases.push(("class CH", chaos));
    let mut two_opts = GOOD.to_vec();
    two_opts[11] = 2;
    for _ in 0..2 {
        two_opts.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    cases.push(("two OPT records", two_opts));
    let mut opt_bad_rdlen = GOOD.to_vec();
    opt_bad_rdlen[11] = 1;
    opt_bad_rdlen.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 40, 0, 1]);
    cases.push(("OPT rdlength beyond the packet", opt_bad_rdlen));
    let mut edns1 = GOOD.to_vec();
    edns1[11] = 1;
    edns1.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 1, 0, 0, 0, 0]);
    cases.push(("EDNS version 1", edns1));
    let mut axfr_udp = GOOD.to_vec();
    let len = axfr_udp.len();
    axfr_udp[len - 3] = 252;
    cases.push(("AXFR over UDP", axfr_udp));
    let mut trailing = GOOD.to_vec();
    trailing.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    cases.push(("trailing garbage", trailing));
    cases.push(("64 KiB of zeros", vec![0; 65_000]));
    cases
}

/// What a broken query may get back: nothing, or an error response with the same id.
fn acceptable(query: &[u8], response: Option<&[u8]>) -> Result<(), String> {
    let Some(bytes) = response else { return Ok(()) };
    if bytes.len() > 512 && query.len() > 11 && query[11] == 0 {
        return Err(format!("{} bytes answer a query without EDNS, more than 512", bytes.len()));
    }
    let message = Message::from_vec(bytes).map_err(|e| format!("the response does not decode: {e}"))?;
    if query.len() >= 2 && message.metadata.id != u16::from_be_bytes([query[0], query[1]]) {
        return Err(format!("response id {} is not the query's", message.metadata.id));
    }
    // BADVERS and BADSIG share the extended rcode 16; hickory decodes it as BADSIG. A transfer
    // asked without TSIG is NOTAUTH (9), as Knot answers it.
    match u16::from(message.metadata.response_code) {
        0 | 1 | 3 | 4 | 5 | 9 | 16 => Ok(()),
        other => Err(format!("unexpected rcode {other} ({})", message.metadata.response_code)),
    }
}

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Random bytes, or a valid query with a few bytes flipped (which reaches deeper).
    fn packet(&mut self) -> Vec<u8> {
        if self.next().is_multiple_of(2) {
            let len = (self.next() % 600) as usize;
            (0..len).map(|_| self.next() as u8).collect()
        } else {
            let mut packet = GOOD.to_vec();
            for _ in 0..1 + self.next() % 4 {
                let at = (self.next() as usize) % packet.len();
                packet[at] = self.next() as u8;
            }
            packet
        }
    }
}

#[test]
fn the_engine_survives_a_hundred_thousand_random_packets() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/zones/dig.test.zone")).expect("the fixture");
    let origin: hickory_proto::rr::Name = "dig.test.".parse().expect("a name");
    let file = flashdns::zonefile::parse(&text, Some(&origin), None).expect("the fixture parses");
    let zone = flashdns::dns::Zone::build(origin, file.records).expect("the zone builds");
    let catalog = Catalog::new([Arc::new(zone)]);
    for (name, packet) in corpus() {
        for transport in [Transport::Udp, Transport::Stream] {
            let response = respond(&catalog, &packet, transport).map(|(bytes, _)| bytes);
            acceptable(&packet, response.as_deref()).unwrap_or_else(|e| panic!("{name} over {transport:?}: {e}"));
        }
    }
    let mut random = Bytes(0x9e37_79b9_7f4a_7c15);
    for i in 0..100_000 {
        let packet = random.packet();
        let response = respond(&catalog, &packet, Transport::Udp).map(|(bytes, _)| bytes);
        acceptable(&packet, response.as_deref()).unwrap_or_else(|e| panic!("random packet {i} {packet:02x?}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_server_answers_broken_queries_with_errors_or_silence_and_keeps_serving() {
    let stack = Stack::start(&[]).await;
    stack.load_zone("dig.test", std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/zones/dig.test.zone")));
    stack.wait_served("dig.test.").await;
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    socket.set_read_timeout(Some(Duration::from_millis(300))).expect("a timeout");
    let mut buf = vec![0u8; 65_535];
    for (name, packet) in corpus() {
        if packet.len() > 65_000 - 28 {
            continue;
        }
        socket.send_to(&packet, stack.dns_addr).expect("send");
        let response = socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec());
        acceptable(&packet, response.as_deref()).unwrap_or_else(|e| panic!("{name} over UDP: {e}"));
        // Over TCP: framed, then the connection either answers or closes.
        let mut tcp = std::net::TcpStream::connect(stack.dns_addr).expect("TCP connects");
        tcp.set_read_timeout(Some(Duration::from_millis(500))).expect("a timeout");
        let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&packet);
        std::io::Write::write_all(&mut tcp, &framed).expect("send over TCP");
        let mut len = [0u8; 2];
        if std::io::Read::read_exact(&mut tcp, &mut len).is_ok() {
            let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
            std::io::Read::read_exact(&mut tcp, &mut body).expect("the framed response");
            acceptable(&packet, Some(&body)).unwrap_or_else(|e| panic!("{name} over TCP: {e}"));
        }
    }
    let mut random = Bytes(42);
    for _ in 0..3_000 {
        socket.send_to(&random.packet(), stack.dns_addr).expect("send");
    }
    // Still alive and answering (once it has worked through the burst, on a busy machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = dig(stack.dns_addr, &["www.dig.test.", "A"]);
        if out.contains("192.0.2.10") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{out}");
    }
    assert_eq!(stack.dns.curl("GET", "/health", None, &[]).0, 200);
}
