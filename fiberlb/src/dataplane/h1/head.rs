//! HTTP/1.1 message heads, parsed once (httparse) into offsets of the bytes they arrived in,
//! with what the proxy needs to know of them gathered in the same pass: how the body is framed
//! (RFC 9112 §6), whether the connection persists, an upgrade, the host.

use std::ops::Range;

/// Header fields in one head at most; more is answered 431.
pub const MAX_HEADERS: usize = 128;

/// How a message's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

#[derive(Debug, Clone, Default)]
pub struct Field {
    pub name: Range<usize>,
    pub value: Range<usize>,
}

/// What a head says, by offsets into the buffer it was parsed from.
#[derive(Debug, Default)]
pub struct Head {
    /// Bytes of the head, the blank line included.
    pub len: usize,
    /// Requests: the method and target; responses: the status code and the reason.
    pub first: Range<usize>,
    pub second: Range<usize>,
    pub status: u16,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub fields: Vec<Field>,
    pub framing: Option<Framing>,
    /// The sender asked to close after this message (or spoke HTTP/1.0 without keep-alive).
    pub close: bool,
    /// `Connection` listed `upgrade`, and this is the `Upgrade` field's value.
    pub upgrade: Option<Range<usize>>,
    pub expect_continue: bool,
    pub host: Option<Range<usize>>,
    /// `Connection` field values: their tokens name more hop-by-hop fields.
    pub connection: Vec<Range<usize>>,
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over `MAX_HEADERS` fields (431).
    TooManyFields,
    /// Not HTTP/1.x, or its framing is ambiguous (400): named for the answer.
    Malformed(&'static str),
}

pub enum Parsed {
    Complete,
    Partial,
}

fn offsets(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

fn refused(e: httparse::Error) -> Refused {
    match e {
        httparse::Error::TooManyHeaders => Refused::TooManyFields,
        httparse::Error::Version => Refused::Malformed("not an HTTP/1.x message"),
        httparse::Error::HeaderName | httparse::Error::HeaderValue => Refused::Malformed("a header field is malformed"),
        _ => Refused::Malformed("the request line is malformed"),
    }
}

/// Parses a request head at the start of `buf` into `head` (reusing its allocations).
pub fn request(buf: &[u8], head: &mut Head) -> Result<Parsed, Refused> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    let len = match parsed.parse(buf).map_err(refused)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(Parsed::Partial),
    };
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version) else {
        return Ok(Parsed::Partial);
    };
    head.reset(len, offsets(buf, method.as_bytes()), offsets(buf, target.as_bytes()), 0, minor);
    head.gather(buf, parsed.headers, true)?;
    Ok(Parsed::Complete)
}

/// Parses a response head at the start of `buf`; `to_head` says the request was HEAD (no body
/// whatever the fields say).
pub fn response(buf: &[u8], head: &mut Head, to_head: bool) -> Result<Parsed, Refused> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(buf).map_err(refused)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(Parsed::Partial),
    };
    let (Some(code), Some(minor)) = (parsed.code, parsed.version) else { return Ok(Parsed::Partial) };
    let reason = parsed.reason.map_or(0..0, |r| offsets(buf, r.as_bytes()));
    // The status code's three digits follow "HTTP/1.x ".
    head.reset(len, 9..12, reason, code, minor);
    head.gather(buf, parsed.headers, false)?;
    if to_head || (100..200).contains(&code) || code == 204 || code == 304 {
        head.framing = Some(Framing::None);
    }
    Ok(Parsed::Complete)
}

impl Head {
    /// Room for the fields of a usual head, so parsing one does not grow it.
    pub fn with_capacity() -> Self {
        Self { fields: Vec::with_capacity(32), ..Self::default() }
    }

    fn reset(&mut self, len: usize, first: Range<usize>, second: Range<usize>, status: u16, minor: u8) {
        self.len = len;
        self.first = first;
        self.second = second;
        self.status = status;
        self.minor = minor;
        self.fields.clear();
        self.framing = None;
        self.close = minor == 0;
        self.upgrade = None;
        self.expect_continue = false;
        self.host = None;
        self.connection.clear();
    }

    fn gather(&mut self, buf: &[u8], fields: &[httparse::Header<'_>], request: bool) -> Result<(), Refused> {
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut other_coding = false;
        let mut upgrade = None;
        let mut connection_upgrade = false;
        for field in fields {
            let (name, value) = (field.name.as_bytes(), field.value);
            self.fields.push(Field { name: offsets(buf, name), value: offsets(buf, value) });
            match name.len() {
                4 if name.eq_ignore_ascii_case(b"host") => self.host = Some(offsets(buf, value)),
                6 if name.eq_ignore_ascii_case(b"expect") => {
                    self.expect_continue = trim(value).eq_ignore_ascii_case(b"100-continue");
                }
                7 if name.eq_ignore_ascii_case(b"upgrade") => upgrade = Some(offsets(buf, value)),
                10 if name.eq_ignore_ascii_case(b"connection") => {
                    for token in value.split(|b| *b == b',').map(trim) {
                        if token.eq_ignore_ascii_case(b"close") {
                            self.close = true;
                        } else if token.eq_ignore_ascii_case(b"keep-alive") {
                            self.close = false;
                        } else if token.eq_ignore_ascii_case(b"upgrade") {
                            connection_upgrade = true;
                        }
                    }
                    self.connection.push(offsets(buf, value));
                }
                14 if name.eq_ignore_ascii_case(b"content-length") => {
                    let n = parse_length(value).ok_or(Refused::Malformed("Content-Length is not a number"))?;
                    if length.is_some_and(|earlier| earlier != n) {
                        return Err(Refused::Malformed("Content-Length is given twice, differently"));
                    }
                    length = Some(n);
                }
                17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                    // Only the last coding decides; chunked must be last to frame the body.
                    for coding in value.split(|b| *b == b',').map(trim).filter(|c| !c.is_empty()) {
                        chunked = coding.eq_ignore_ascii_case(b"chunked");
                        other_coding |= !chunked;
                    }
                }
                _ => {}
            }
        }
        if connection_upgrade {
            self.upgrade = upgrade;
        }
        let encoded = chunked || other_coding;
        self.framing = Some(match (encoded, length) {
            // Both: a smuggling attempt as far as a proxy can tell (RFC 9112 §6.1).
            (true, Some(_)) if request => return Err(Refused::Malformed("Transfer-Encoding and Content-Length together")),
            (true, _) if !chunked && request => return Err(Refused::Malformed("a Transfer-Encoding other than chunked")),
            (true, _) if chunked => Framing::Chunked,
            (true, _) => Framing::UntilClose,
            (false, Some(n)) => Framing::Length(n),
            (false, None) if request => Framing::None,
            (false, None) => Framing::UntilClose,
        });
        Ok(())
    }

    /// The bytes of `range` in `buf`.
    pub fn at<'b>(buf: &'b [u8], range: &Range<usize>) -> &'b [u8] {
        &buf[range.clone()]
    }

    pub fn framing(&self) -> Framing {
        self.framing.unwrap_or(Framing::None)
    }

    /// Whether field `name` (lowercase) is listed in a `Connection` field.
    pub fn named_in_connection(&self, buf: &[u8], name: &[u8]) -> bool {
        self.connection
            .iter()
            .any(|value| buf[value.clone()].split(|b| *b == b',').map(trim).any(|token| token.eq_ignore_ascii_case(name)))
    }
}

fn parse_length(value: &[u8]) -> Option<u64> {
    let value = trim(value);
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

pub fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Result<Head, Refused> {
        let mut head = Head::default();
        match request(text.as_bytes(), &mut head)? {
            Parsed::Complete => Ok(head),
            Parsed::Partial => Err(Refused::Malformed("partial")),
        }
    }

    #[test]
    fn requests_are_framed_as_rfc_9112_says() {
        let head = req("GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("parses");
        assert_eq!((head.framing(), head.close, head.minor), (Framing::None, false, 1));
        assert_eq!(req("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n").expect("parses").framing(), Framing::Length(12));
        assert_eq!(req("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").expect("parses").framing(), Framing::Chunked);
        assert!(req("GET / HTTP/1.0\r\n\r\n").expect("parses").close);
        assert!(!req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").expect("parses").close);
        assert!(req("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").expect("parses").close);
        for smuggled in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ] {
            assert!(matches!(req(smuggled), Err(Refused::Malformed(_))), "{smuggled}");
        }
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("x-{i}: v\r\n")).collect();
        assert_eq!(req(&format!("GET / HTTP/1.1\r\n{many}\r\n")).err(), Some(Refused::TooManyFields));
    }

    #[test]
    fn upgrades_hosts_and_connection_tokens_are_found() {
        let text = "GET /ws HTTP/1.1\r\nHost: Example.com:80\r\nConnection: keep-alive, Upgrade, x-private\r\nUpgrade: websocket\r\n\r\n";
        let head = req(text).expect("parses");
        let buf = text.as_bytes();
        assert_eq!(Head::at(buf, head.upgrade.as_ref().expect("an upgrade")), b"websocket");
        assert_eq!(Head::at(buf, head.host.as_ref().expect("a host")), b"Example.com:80");
        assert!(head.named_in_connection(buf, b"x-private"));
        assert!(!head.named_in_connection(buf, b"x-public"));
        assert!(req("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").expect("parses").upgrade.is_none());
    }

    #[test]
    fn responses_without_a_body_say_so() {
        let mut head = Head::default();
        let parse = |text: &str, to_head: bool, head: &mut Head| {
            assert!(matches!(response(text.as_bytes(), head, to_head), Ok(Parsed::Complete)), "{text}");
            head.framing()
        };
        assert_eq!(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, &mut head), Framing::Length(5));
        assert_eq!(head.status, 200);
        assert_eq!(parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, &mut head), Framing::None);
        assert_eq!(parse("HTTP/1.1 204 No Content\r\n\r\n", false, &mut head), Framing::None);
        assert_eq!(parse("HTTP/1.1 200 OK\r\n\r\n", false, &mut head), Framing::UntilClose);
        assert_eq!(parse("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, &mut head), Framing::Chunked);
        assert!(head.close, "HTTP/1.0 closes unless told otherwise");
    }
}
