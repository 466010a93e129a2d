//! Response rate limiting over UDP, seen from a client: a burst toward one network gets its
//! budget of answers, then every second response truncated (so a real client retries over
//! TCP, which still answers) and the rest nothing.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{dig, Stack};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_is_cut_to_the_limit_with_every_second_excess_response_truncated() {
    // Loopback is exempt by default; here it stands for a client network.
    let env = [("FLASHDNS_DNS_RRL_RESPONSES_PER_SEC", "10"), ("FLASHDNS_DNS_RRL_SLIP", "2"), ("FLASHDNS_DNS_RRL_EXEMPT", "[]")];
    let stack = Stack::start(&env).await;
    stack.load_zone("dig.test", std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/zones/dig.test.zone")));
    stack.wait_served("dig.test.").await;
    // Start the burst at the beginning of a second, so it is counted in one.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock");
    tokio::time::sleep(Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos()))).await;
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    socket.set_read_timeout(Some(Duration::from_millis(300))).expect("a timeout");
    for id in 0..50u16 {
        let mut query = Message::query();
        query.metadata.id = id;
        query.add_query(Query::query(Name::from_ascii("nope.dig.test.").expect("a name"), RecordType::A));
        socket.send_to(&query.to_vec().expect("encodes"), stack.dns_addr).expect("send");
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buf) {
        let response = Message::from_vec(&buf[..n]).expect("a response decodes");
        if response.metadata.truncation {
            assert!(response.answers.is_empty() && response.authorities.is_empty(), "{response:?}");
            truncated += 1;
        } else {
            full += 1;
        }
    }
    assert_eq!(full, 10, "the budget: {full} full answers, {truncated} truncated");
    assert_eq!(truncated, 20, "every second one of the 40 over the budget: {full} full, {truncated} truncated");
    // TCP is not limited.
    let out = dig(stack.dns_addr, &["nope.dig.test.", "A", "+tcp"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let (_, metrics) = stack.dns.curl("GET", "/metrics", None, &[]);
    let text = metrics.as_str().unwrap_or_default();
    assert!(text.contains("flashdns_rate_limited_total{action=\"drop\"} 20"), "{text}");
}
