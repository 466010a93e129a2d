//! The heads FiberLB sends on: a request to its backend with the hop-by-hop fields gone, the
//! forwarding fields (`X-Forwarded-For`/`-Proto`/`-Host`, `Forwarded`) and a rule's field
//! changes applied; a response to its client likewise; and FiberLB's own answers.

use std::net::IpAddr;

use super::head::{Head, trim};
use crate::dataplane::plan::CompiledRule;

/// Fields that describe one connection, not the message (RFC 9110 §7.6.1), and the forwarding
/// fields FiberLB writes itself.
const DROPPED_FROM_REQUESTS: [&[u8]; 12] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"upgrade",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"forwarded",
];
const DROPPED_FROM_RESPONSES: [&[u8]; 6] = [b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"];

fn listed(list: &[&[u8]], name: &[u8]) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// What a request's forwarded head needs besides the head itself.
pub struct Forwarding<'a> {
    pub peer: IpAddr,
    /// `peer` as text (formatted once per connection).
    pub peer_ip: &'a str,
    pub https: bool,
    /// The request's host, lowercase, without port.
    pub host: Option<&'a str>,
    /// The authority of an absolute-form target, sent as `Host` when the request has none.
    pub authority: Option<&'a [u8]>,
    pub rule: Option<&'a CompiledRule>,
    /// FiberLB answered `Expect: 100-continue` itself, so the field is not passed on.
    pub drop_expect: bool,
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the head of the request in `buf` (parsed as `head`), for target `path`, as it goes
/// to a backend over HTTP/1.1.
pub fn request(buf: &[u8], head: &Head, path: &[u8], fw: &Forwarding<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(Head::at(buf, &head.first));
    out.push(b' ');
    out.extend_from_slice(path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let rule = fw.rule.map(|r| &r.spec);
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    for f in &head.fields {
        let name = Head::at(buf, &f.name);
        let value = Head::at(buf, &f.value);
        if listed(&DROPPED_FROM_REQUESTS, name) {
            if name.eq_ignore_ascii_case(b"x-forwarded-for") {
                forwarded_for.push(trim(value));
            }
            continue;
        }
        if (fw.drop_expect && name.eq_ignore_ascii_case(b"expect"))
            || head.named_in_connection(buf, name)
            || rule.is_some_and(|r| {
                r.remove_headers.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(name))
                    || r.set_headers.keys().any(|n| n.as_bytes().eq_ignore_ascii_case(name))
            })
        {
            continue;
        }
        field(out, name, value);
    }
    if head.host.is_none() {
        if let Some(authority) = fw.authority {
            field(out, b"host", authority);
        }
    }
    if let Some(upgrade) = &head.upgrade {
        field(out, b"upgrade", Head::at(buf, upgrade));
        field(out, b"connection", b"upgrade");
    }
    let ip = fw.peer_ip;
    out.extend_from_slice(b"x-forwarded-for: ");
    for earlier in forwarded_for.iter().filter(|v| !v.is_empty()) {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(ip.as_bytes());
    out.extend_from_slice(b"\r\n");
    let proto: &[u8] = if fw.https { b"https" } else { b"http" };
    field(out, b"x-forwarded-proto", proto);
    // RFC 7239 §6: an IPv6 node is quoted and bracketed.
    out.extend_from_slice(b"forwarded: for=");
    match fw.peer {
        IpAddr::V4(_) => out.extend_from_slice(ip.as_bytes()),
        IpAddr::V6(_) => {
            out.extend_from_slice(b"\"[");
            out.extend_from_slice(ip.as_bytes());
            out.extend_from_slice(b"]\"");
        }
    }
    out.extend_from_slice(b";proto=");
    out.extend_from_slice(proto);
    if let Some(host) = fw.host {
        out.extend_from_slice(b";host=");
        out.extend_from_slice(host.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    if let Some(host) = fw.host {
        field(out, b"x-forwarded-host", host.as_bytes());
    }
    if let Some(rule) = rule {
        for (name, value) in &rule.set_headers {
            field(out, name.as_bytes(), value.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the head of the backend's response in `buf` as it goes to the client; `close` adds
/// `Connection: close` (FiberLB closes the client connection after it).
pub fn response(buf: &[u8], head: &Head, close: bool, out: &mut Vec<u8>) {
    let switching = head.status == 101;
    out.extend_from_slice(b"HTTP/1.1 ");
    status_code(out, head.status);
    out.push(b' ');
    out.extend_from_slice(Head::at(buf, &head.second));
    out.extend_from_slice(b"\r\n");
    for f in &head.fields {
        let name = Head::at(buf, &f.name);
        let hop = listed(&DROPPED_FROM_RESPONSES, name) || head.named_in_connection(buf, name);
        let kept_for_switch = switching && (name.eq_ignore_ascii_case(b"upgrade") || name.eq_ignore_ascii_case(b"connection"));
        if hop && !kept_for_switch {
            continue;
        }
        field(out, name, Head::at(buf, &f.value));
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn status_code(out: &mut Vec<u8>, status: u16) {
    let status = status.clamp(100, 999);
    out.extend_from_slice(&[b'0' + (status / 100) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8]);
}

/// One of FiberLB's own answers (an error or a redirect), with a one-line text body.
pub fn reply(status: u16, message: &str, location: Option<&str>, close: bool, out: &mut Vec<u8>) {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
    out.extend_from_slice(b"HTTP/1.1 ");
    status_code(out, status);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
    out.extend_from_slice((message.len() + 1).to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(location) = location.filter(|l| !l.bytes().any(|b| b == b'\r' || b == b'\n')) {
        field(out, b"location", location.as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::h1::head::{self, Parsed};

    fn parse(text: &str) -> Head {
        let mut head = Head::default();
        assert!(matches!(head::request(text.as_bytes(), &mut head), Ok(Parsed::Complete)));
        head
    }

    #[test]
    fn hop_by_hop_fields_go_and_forwarding_fields_are_written() {
        let text = "GET /a?b HTTP/1.1\r\nHost: Web:80\r\nConnection: keep-alive, x-secret\r\nx-secret: s\r\nKeep-Alive: 5\r\n\
                    X-Forwarded-For: 198.51.100.9\r\nForwarded: for=evil\r\nAccept: */*\r\n\r\n";
        let head = parse(text);
        let mut out = Vec::new();
        let fw = Forwarding { peer: "2001:db8::1".parse().expect("ip"), peer_ip: "2001:db8::1", https: true, host: Some("web"), authority: None, rule: None, drop_expect: false };
        request(text.as_bytes(), &head, b"/a?b", &fw, &mut out);
        let sent = String::from_utf8(out).expect("text");
        assert_eq!(
            sent,
            "GET /a?b HTTP/1.1\r\nHost: Web:80\r\nAccept: */*\r\nx-forwarded-for: 198.51.100.9, 2001:db8::1\r\n\
             x-forwarded-proto: https\r\nforwarded: for=\"[2001:db8::1]\";proto=https;host=web\r\nx-forwarded-host: web\r\n\r\n"
        );
    }

    #[test]
    fn responses_lose_hop_by_hop_fields_and_say_close_when_asked() {
        let text = "HTTP/1.0 200 OK\r\nServer: nginx\r\nConnection: keep-alive\r\nContent-Length: 6\r\n\r\n";
        let mut head = Head::default();
        assert!(matches!(head::response(text.as_bytes(), &mut head, false), Ok(Parsed::Complete)));
        let mut out = Vec::new();
        response(text.as_bytes(), &head, true, &mut out);
        assert_eq!(String::from_utf8(out).expect("text"), "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 6\r\nconnection: close\r\n\r\n");
        let mut out = Vec::new();
        reply(301, "redirected", Some("https://new.example/"), false, &mut out);
        assert!(String::from_utf8(out).expect("text").starts_with("HTTP/1.1 301 Moved Permanently\r\n"));
    }
}
