//! One DNS question asked of one server, over UDP or TCP, the way a resolver asks an
//! authoritative server: no recursion desired, a random id, the name's case kept as written.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, Query as Question};
use hickory_proto::rr::{Name, RecordType};

/// How long one query may take, connection included: local servers answer in microseconds, so
/// anything near this is a lost packet or a hung server.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// When a UDP query with no answer yet is sent once more, within `QUERY_TIMEOUT`.
const UDP_RESEND_AFTER: Duration = Duration::from_millis(500);

/// One query of the differential corpus.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Query {
    /// The name as sent, case included (`WwW.Example.test.`); absolute, or taken as absolute.
    pub name: String,
    pub rtype: RecordType,
    /// `None` sends no OPT record; `Some(size)` sends EDNS(0) advertising that UDP payload size.
    pub edns: Option<u16>,
    /// The DO bit; only meaningful with `edns`.
    pub dnssec_ok: bool,
    pub tcp: bool,
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.rtype)?;
        match self.edns {
            Some(size) => write!(f, " edns={size}")?,
            None => write!(f, " no-edns")?,
        }
        if self.dnssec_ok {
            write!(f, " +do")?;
        }
        write!(f, " {}", if self.tcp { "tcp" } else { "udp" })
    }
}

/// Asks `server` one question and returns its decoded answer. Errors (timeouts, refused
/// connections, undecodable answers) come back as text so the differ can compare and print them.
pub fn ask(server: SocketAddr, q: &Query) -> Result<Message, String> {
    let request = encode(q)?;
    let id = u16::from_be_bytes([request[0], request[1]]);
    let reply = if q.tcp { exchange_tcp(server, &request)? } else { exchange_udp(server, &request, id)? };
    Message::from_vec(&reply).map_err(|e| format!("undecodable answer: {e}"))
}

fn encode(q: &Query) -> Result<Vec<u8>, String> {
    let name = parse_name(&q.name)?;
    // Message::query() draws a random id; header bits start cleared, so RD stays off.
    let mut message = Message::query();
    message.add_query(Question::query(name, q.rtype));
    if let Some(size) = q.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        edns.set_dnssec_ok(q.dnssec_ok);
        message.set_edns(edns);
    }
    message.to_vec().map_err(|e| format!("cannot encode query {q}: {e}"))
}

/// Parses a name keeping its case: `Name::from_str` would lowercase it (IDNA), which would hide
/// whether a server echoes the question as asked.
pub fn parse_name(text: &str) -> Result<Name, String> {
    if text == "." {
        return Ok(Name::root());
    }
    let mut name = Name::from_ascii(text).map_err(|e| format!("bad query name {text:?}: {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

fn exchange_udp(server: SocketAddr, request: &[u8], id: u16) -> Result<Vec<u8>, String> {
    let socket = UdpSocket::bind(("127.0.0.1", 0)).map_err(|e| format!("udp bind: {e}"))?;
    // Connected, so an unbound port fails fast with ECONNREFUSED instead of a timeout.
    socket.connect(server).map_err(|e| format!("udp connect {server}: {e}"))?;
    socket.send(request).map_err(|e| format!("udp send to {server}: {e}"))?;
    let start = Instant::now();
    let mut resent = false;
    let mut buf = vec![0u8; 65535];
    loop {
        let elapsed = start.elapsed();
        if elapsed >= QUERY_TIMEOUT {
            return Err(format!("timeout: no UDP answer from {server}"));
        }
        // Wait until the resend point first, then until the deadline.
        let wait = if resent { QUERY_TIMEOUT - elapsed } else { UDP_RESEND_AFTER.saturating_sub(elapsed) };
        socket.set_read_timeout(Some(wait.max(Duration::from_millis(1)))).map_err(|e| format!("udp timeout: {e}"))?;
        match socket.recv(&mut buf) {
            // A datagram with another id is a stray (a late answer to nobody); keep waiting.
            Ok(n) if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => return Ok(buf[..n].to_vec()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if !resent {
                    // UDP may drop a datagram even on loopback under load; a resolver resends.
                    socket.send(request).map_err(|e| format!("udp resend to {server}: {e}"))?;
                    resent = true;
                }
            }
            Err(e) => return Err(format!("udp receive from {server}: {e}")),
        }
    }
}

fn exchange_tcp(server: SocketAddr, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut stream =
        TcpStream::connect_timeout(&server, QUERY_TIMEOUT).map_err(|e| format!("tcp connect {server}: {e}"))?;
    stream.set_read_timeout(Some(QUERY_TIMEOUT)).map_err(|e| format!("tcp timeout: {e}"))?;
    stream.set_write_timeout(Some(QUERY_TIMEOUT)).map_err(|e| format!("tcp timeout: {e}"))?;
    let len = u16::try_from(request.len()).map_err(|_| "query longer than 65535 octets".to_string())?;
    // RFC 1035 4.2.2: each message is prefixed by its length; one write so it is one segment.
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).map_err(|e| format!("tcp send to {server}: {e}"))?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).map_err(|e| tcp_read_error(server, e))?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).map_err(|e| tcp_read_error(server, e))?;
    Ok(reply)
}

fn tcp_read_error(server: SocketAddr, e: std::io::Error) -> String {
    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
        format!("timeout: no TCP answer from {server}")
    } else {
        format!("tcp receive from {server}: {e}")
    }
}
