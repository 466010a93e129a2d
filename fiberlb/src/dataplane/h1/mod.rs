//! The HTTP/1.1 proxy path: each request head is parsed once where it arrived (`head`), routed
//! by the plan as it is then, rewritten into the head the backend gets (`rewrite`), and sent
//! with its body streamed on as bytes (`body` finds where it ends) over a backend connection
//! the client connection keeps (`upstream`); the response comes back the same way. Nothing is
//! decoded into a message object and encoded again, and there is no task or channel per
//! request. HTTP/2 (ALPN h2, or the prior-knowledge preface) and HTTP/1.0 clients, and a
//! connection from its first request for a pool whose backends speak HTTP/2, are handed to
//! hyper (`super::http`) with the bytes read so far put back (`rewind`).
//!
//! Limits and timeouts as the listener says: a request head within `request_ms` of its first
//! byte (the first within `request_ms` of the connection, later ones within `idle_ms`), and
//! under `max_header_bytes` (else 431); a body under `max_body_bytes` (else 413); the backend's
//! response head within `request_ms` (else 504); no byte moving for `idle_ms` mid-body ends the
//! exchange. A request without a body and with an idempotent method is retried on another
//! backend when one fails before answering, and on a fresh connection when a kept one turns
//! out closed.

pub mod body;
pub mod head;
pub mod rewind;
pub mod rewrite;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::balance::{maglev, Candidate};
use crate::model::pool::{BackendProtocol, HashOn};
use crate::model::rule::Action;

use super::plan::{host_without_port, ListenerPlan, ATTEMPTS};
use super::stats::InFlight;
use super::Shared;
use body::Progress;
use head::{Framing, Head, Parsed, Refused};
use super::timer::Timer;
use upstream::{Kept, Upstream};

/// Body bytes already read are appended to the head's write up to this; more go on their own.
const COALESCE: usize = 16 * 1024;
/// Read buffers grow by this.
const READ_CHUNK: usize = 16 * 1024;

/// Makes room to read into `buf`: at least 4 KiB free, grown by a chunk when less is (so a
/// partial head in the buffer does not reallocate it on every read).
fn room(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(READ_CHUNK);
    }
}

/// A byte stream and what was read from it but not used yet.
struct Conn<S> {
    io: S,
    buf: BytesMut,
}

/// What a client connection keeps between its requests, so that a request allocates nothing.
struct Reused {
    out: Vec<u8>,
    response: Head,
    candidates: Vec<Candidate>,
    host: String,
    /// The client's address as written into forwarding fields.
    peer_ip: String,
    kept: Kept,
    /// Waiting for the client's next request head.
    head_timer: Timer,
    /// Bodies moving, either way.
    body_timer: Timer,
    /// Waiting for the backend's response head.
    answer_timer: Timer,
    /// Name the backend in the outcome (for the access log).
    log: bool,
}

/// What became of one request.
struct Outcome {
    status: u16,
    backend: Option<String>,
    next: Next,
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
    /// The connection was handed over (an upgrade joined to its backend).
    Done,
    /// The request goes to an HTTP/2 pool: hyper serves the connection from this request on.
    Hyper,
}

enum HeadRead {
    Ready,
    /// Closed, or timed out before a request.
    Closed,
    Refused(u16, &'static str),
    /// Not HTTP/1.1: hyper serves it.
    Elsewhere,
}

/// Serves one client connection (plain, or TLS terminated) of listener `key` until it closes.
pub async fn serve<S>(io: S, peer: SocketAddr, key: String, shared: Arc<Shared>, https: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut client = Conn { io, buf: BytesMut::with_capacity(READ_CHUNK) };
    let mut head = Head::with_capacity();
    let mut r = Reused {
        out: Vec::with_capacity(4096),
        response: Head::with_capacity(),
        candidates: Vec::new(),
        host: String::new(),
        peer_ip: peer.ip().to_string(),
        kept: Kept::default(),
        head_timer: Timer::default(),
        body_timer: Timer::default(),
        answer_timer: Timer::default(),
        log: shared.access_log,
    };
    let mut first = true;
    let mut followed = shared.follow(|s| s.listener(&key));
    loop {
        let Some(plan) = followed.current(&shared) else { return };
        match read_head(&mut client, &mut head, plan, first, &mut r.head_timer).await {
            HeadRead::Ready => {}
            HeadRead::Closed => return,
            HeadRead::Refused(status, why) => {
                plan.metrics.request(status, 0.0);
                r.out.clear();
                rewrite::reply(status, why, None, true, &mut r.out);
                let _ = send(&mut client.io, &r.out).await;
                return;
            }
            HeadRead::Elsewhere => break,
        }
        first = false;
        let started = Instant::now();
        let logged = r.log.then(|| {
            let (method, target) = (Head::at(&client.buf, &head.first), Head::at(&client.buf, &head.second));
            (String::from_utf8_lossy(method).into_owned(), String::from_utf8_lossy(target).into_owned())
        });
        let outcome = exchange(&mut client, &head, plan, &mut r, peer, https).await;
        if outcome.next == Next::Hyper {
            break;
        }
        let elapsed = started.elapsed();
        plan.metrics.request(outcome.status, elapsed.as_secs_f64());
        if let Some((method, path)) = logged {
            tracing::info!(
                target: "fiberlb::access",
                listener = %plan.name, loadbalancer = %plan.loadbalancer, client = %peer, %method, %path, status = outcome.status,
                backend = outcome.backend.as_deref().unwrap_or("-"), duration_us = elapsed.as_micros() as u64,
            );
        }
        match outcome.next {
            Next::KeepAlive => continue,
            Next::Close => {
                let _ = client.io.shutdown().await;
                return;
            }
            Next::Done | Next::Hyper => return,
        }
    }
    // hyper serves the rest, from the bytes read so far. Boxed: hyper's connection is large,
    // and this path rare.
    let read = client.buf.split().freeze();
    drop(r);
    Box::pin(super::http::serve_hyper(rewind::Rewind::new(read, client.io), peer, key, shared, https)).await;
}

async fn send<W: AsyncWrite + Unpin>(io: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

/// Reads until `head` holds a whole request head at the start of `client.buf`.
async fn read_head<S: AsyncRead + Unpin>(client: &mut Conn<S>, head: &mut Head, plan: &ListenerPlan, first: bool, timer: &mut Timer) -> HeadRead {
    let request = Duration::from_millis(plan.spec.timeouts.request_ms);
    let idle = Duration::from_millis(plan.spec.timeouts.idle_ms);
    let limit = (plan.spec.max_header_bytes as usize).max(1024);
    let mut deadline = tokio::time::Instant::now() + if first { request } else { idle };
    let mut begun = false;
    loop {
        if !client.buf.is_empty() {
            match head::request(&client.buf, head) {
                Ok(Parsed::Complete) if head.len > limit => return HeadRead::Refused(431, "the request's header section is too large"),
                Ok(Parsed::Complete) if head.minor == 0 => return HeadRead::Elsewhere,
                Ok(Parsed::Complete) => return HeadRead::Ready,
                Ok(Parsed::Partial) if client.buf.len() > limit => {
                    return HeadRead::Refused(431, "the request's header section is too large");
                }
                Ok(Parsed::Partial) => {}
                Err(_) if client.buf.starts_with(b"PRI * HTTP/2.0") => return HeadRead::Elsewhere,
                Err(Refused::TooManyFields) => return HeadRead::Refused(431, "the request has too many header fields"),
                Err(Refused::Malformed(why)) => return HeadRead::Refused(400, why),
            }
            if !begun {
                begun = true;
                deadline = deadline.min(tokio::time::Instant::now() + request);
            }
        }
        room(&mut client.buf);
        match timer.until(deadline, client.io.read_buf(&mut client.buf)).await {
            Some(Ok(n)) if n > 0 => {}
            _ => return HeadRead::Closed,
        }
    }
}

/// The request target split into what the backend gets (origin form) and, for an absolute
/// form, its authority.
fn split_target(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    for scheme in [&b"http://"[..], b"https://"] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &target[scheme.len()..];
            let end = rest.iter().position(|b| matches!(b, b'/' | b'?')).unwrap_or(rest.len());
            let path = &rest[end..];
            return (if path.is_empty() { b"/" } else { path }, Some(&rest[..end]));
        }
    }
    (target, None)
}

/// A host field's name, lowercase, without its port, into `into` (false: none).
fn host_name(raw: &[u8], into: &mut String) -> bool {
    into.clear();
    let Ok(raw) = std::str::from_utf8(raw) else { return false };
    into.push_str(host_without_port(raw));
    into.make_ascii_lowercase();
    !into.is_empty()
}

fn field<'b>(buf: &'b [u8], head: &Head, name: &str) -> Option<&'b [u8]> {
    head.fields.iter().find(|f| Head::at(buf, &f.name).eq_ignore_ascii_case(name.as_bytes())).map(|f| Head::at(buf, &f.value))
}

/// Our own answer to a request; the connection is kept unless `close` (or the request's body
/// was left unread).
async fn answer<S>(client: &mut Conn<S>, out: &mut Vec<u8>, status: u16, message: &str, location: Option<&str>, close: bool) -> Outcome
where
    S: AsyncWrite + Unpin,
{
    out.clear();
    rewrite::reply(status, message, location, close, out);
    let next = match send(&mut client.io, out).await {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    };
    Outcome { status, backend: None, next }
}

async fn exchange<S>(client: &mut Conn<S>, head: &Head, plan: &ListenerPlan, r: &mut Reused, peer: SocketAddr, https: bool) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let framing = head.framing();
    let has_body = framing != Framing::None;
    // A body FiberLB does not read leaves the connection unusable after the answer.
    let close_unread = has_body || head.close;
    if let Framing::Length(n) = framing {
        if n > plan.spec.max_body_bytes {
            return answer(client, &mut r.out, 413, &plan.body_too_large(), None, true).await;
        }
    }
    let buf = &client.buf[..];
    let (target, authority) = split_target(Head::at(buf, &head.second));
    let has_host = head.host.as_ref().map(|h| Head::at(buf, h)).or(authority).is_some_and(|raw| host_name(raw, &mut r.host));
    let host = has_host.then_some(r.host.as_str());
    let path = std::str::from_utf8(target.split(|b| *b == b'?').next().unwrap_or(target)).unwrap_or("");
    let rule = plan.rules.iter().find(|rule| rule.matches(host, path, |name| field(buf, head, name)));
    let pool = match rule.map(|r| &r.spec.action) {
        Some(Action::Redirect { location, status }) => {
            return answer(client, &mut r.out, *status, "redirected", Some(location), close_unread).await;
        }
        Some(Action::Forward { pool }) => plan.pools.get(pool),
        None => plan.default_pool(),
    };
    let Some(pool) = pool else {
        return answer(client, &mut r.out, 503, "no pool serves this request", None, close_unread).await;
    };
    if pool.spec.backend_protocol == BackendProtocol::Http2 {
        return Outcome { status: 0, backend: None, next: Next::Hyper };
    }
    let method = Head::at(buf, &head.first);
    let to_head = method == b"HEAD";
    let retryable = !has_body && matches!(method, b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE");
    let hash = match pool.spec.hash_on.as_ref().or(pool.spec.affinity.as_ref()) {
        Some(HashOn::SourceAddress) => Some(maglev::key_of(peer.ip())),
        Some(HashOn::Header { name }) => Some(field(buf, head, name).map_or_else(|| maglev::key_of(peer.ip()), maglev::key_of)),
        None => None,
    };
    let continue_first = has_body && head.expect_continue;
    r.out.clear();
    let fw = rewrite::Forwarding { peer: peer.ip(), peer_ip: &r.peer_ip, https, host, authority, rule, drop_expect: continue_first };
    rewrite::request(buf, head, target, &fw, &mut r.out);
    let upgrade = head.upgrade.is_some();
    let client_close = head.close;
    client.buf.advance(head.len);
    let request_head_len = r.out.len();

    let timeouts = &plan.spec.timeouts;
    let (request_timeout, idle) = (Duration::from_millis(timeouts.request_ms), Duration::from_millis(timeouts.idle_ms));
    let mut tried = [usize::MAX; ATTEMPTS];
    let attempts = if retryable { ATTEMPTS.min(pool.backends.len()).max(1) } else { 1 };
    let mut body = Progress::new(framing);
    for attempt in 0..attempts {
        pool.candidates_into(&tried[..attempt], &mut r.candidates);
        let Some(chosen) = pool.balancer.pick(&r.candidates, hash) else { break };
        tried[attempt] = chosen;
        let backend = &pool.backends[chosen];
        let name = r.log.then(|| backend.name.clone());
        let _in_flight = InFlight::new(backend.live.clone());
        let addr = SocketAddr::new(backend.spec.address, backend.spec.port);
        let (mut up, mut reused) = match r.kept.take(addr) {
            Some(up) => (up, true),
            None => match Upstream::connect(addr, Duration::from_millis(timeouts.connect_ms)).await {
                Ok(up) => (up, false),
                Err(e) => {
                    let ejected = backend.live.failed(&pool.spec);
                    tracing::warn!(pool = %pool.name, backend = %backend.name, error = %e, ejected, retryable, "backend connection failed");
                    continue;
                }
            },
        };
        // A kept connection the backend closed meanwhile shows only now: a request without a
        // body goes again over a fresh one, once.
        let answered = loop {
            r.out.truncate(request_head_len);
            match send_request(client, &mut up, &mut r.out, &mut body, continue_first, plan, &mut r.body_timer).await {
                Err(Failed::Client) => return Outcome { status: 499, backend: name, next: Next::Close },
                Err(Failed::TooLarge) => {
                    return answer(client, &mut r.out, 413, &plan.body_too_large(), None, true).await;
                }
                Err(Failed::Malformed(why)) => return answer(client, &mut r.out, 400, why, None, true).await,
                Err(Failed::Backend(e)) => break Err(e),
                Ok(()) => {}
            }
            match read_response(&mut up, &mut r.response, to_head, request_timeout, &mut r.answer_timer).await {
                Err(e) if reused && !has_body && e.kind() != std::io::ErrorKind::TimedOut => {
                    reused = false;
                    match Upstream::connect(addr, Duration::from_millis(timeouts.connect_ms)).await {
                        Ok(fresh) => up = fresh,
                        Err(e) => break Err(e),
                    }
                }
                other => break other,
            }
        };
        match answered {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                let close = !body.done() || client_close;
                return Outcome { backend: name, ..answer(client, &mut r.out, 504, "the backend did not answer in time", None, close).await };
            }
            Err(e) if retryable => {
                let ejected = backend.live.failed(&pool.spec);
                tracing::warn!(pool = %pool.name, backend = %backend.name, error = %e, ejected, "backend request failed; retrying");
                continue;
            }
            Err(e) => {
                backend.live.failed(&pool.spec);
                tracing::warn!(pool = %pool.name, backend = %backend.name, error = %e, "backend request failed");
                let close = !body.done() || client_close;
                return Outcome { backend: name, ..answer(client, &mut r.out, 502, "the backend failed to answer", None, close).await };
            }
        }
        backend.live.succeeded();
        // Interim responses (100 Continue and the like) go on as they come.
        while (100..200).contains(&r.response.status) && r.response.status != 101 {
            r.out.clear();
            rewrite::response(&up.buf, &r.response, false, &mut r.out);
            up.buf.advance(r.response.len);
            if send(&mut client.io, &r.out).await.is_err() {
                return Outcome { status: 499, backend: name, next: Next::Close };
            }
            if read_response(&mut up, &mut r.response, to_head, request_timeout, &mut r.answer_timer).await.is_err() {
                return Outcome { backend: name, ..answer(client, &mut r.out, 502, "the backend failed to answer", None, true).await };
            }
        }
        if r.response.status == 101 {
            if !upgrade {
                return Outcome { backend: name, ..answer(client, &mut r.out, 502, "the backend switched protocols unasked", None, true).await };
            }
            r.out.clear();
            rewrite::response(&up.buf, &r.response, false, &mut r.out);
            up.buf.advance(r.response.len);
            return Outcome { status: 101, backend: name, next: Box::pin(join(client, up, &mut r.out)).await };
        }
        let status = r.response.status;
        let framing = r.response.framing();
        let close = client_close || framing == Framing::UntilClose || !body.done();
        r.out.clear();
        rewrite::response(&up.buf, &r.response, close, &mut r.out);
        up.buf.advance(r.response.len);
        let relayed = relay(&mut up, &mut client.io, Progress::new(framing), &mut r.out, idle, &mut r.body_timer).await;
        // The backend connection outlives a client that closes: the next client takes it.
        if relayed.is_ok() && !r.response.close && framing != Framing::UntilClose && up.buf.is_empty() {
            r.kept.put(up);
        }
        let next = if relayed.is_ok() && !close { Next::KeepAlive } else { Next::Close };
        return Outcome { status, backend: name, next };
    }
    answer(client, &mut r.out, 502, "no backend could be reached", None, !body.done() || client_close).await
}

enum Failed {
    /// The client went away or stalled mid-body.
    Client,
    /// The request's chunked coding is malformed (400).
    Malformed(&'static str),
    /// The body grew past the listener's limit.
    TooLarge,
    Backend(std::io::Error),
}

/// Sends the head in `out` and the request's body (what is buffered, then the rest as it
/// comes) to `up`. A body already sent once (a retry) is not sent again: only bodiless
/// requests are retried.
async fn send_request<S>(
    client: &mut Conn<S>,
    up: &mut Upstream,
    out: &mut Vec<u8>,
    body: &mut Progress,
    continue_first: bool,
    plan: &ListenerPlan,
    timer: &mut Timer,
) -> Result<(), Failed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = plan.spec.max_body_bytes;
    let idle = Duration::from_millis(plan.spec.timeouts.idle_ms);
    let mut sent_body = 0u64;
    let take = |body: &mut Progress, bytes: &[u8], sent: &mut u64| -> Result<usize, Failed> {
        let n = body.take(bytes).map_err(Failed::Malformed)?;
        *sent += n as u64;
        if body.data(*sent) > limit {
            return Err(Failed::TooLarge);
        }
        Ok(n)
    };
    let n = take(body, &client.buf[..client.buf.len().min(COALESCE)], &mut sent_body)?;
    out.extend_from_slice(&client.buf[..n]);
    client.buf.advance(n);
    up.stream.write_all(out).await.map_err(Failed::Backend)?;
    if body.done() {
        return Ok(());
    }
    if continue_first && send(&mut client.io, b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
        return Err(Failed::Client);
    }
    loop {
        if !client.buf.is_empty() {
            let n = take(body, &client.buf, &mut sent_body)?;
            up.stream.write_all(&client.buf[..n]).await.map_err(Failed::Backend)?;
            client.buf.advance(n);
            if body.done() {
                return Ok(());
            }
        }
        room(&mut client.buf);
        match timer.within(idle, client.io.read_buf(&mut client.buf)).await {
            Some(Ok(n)) if n > 0 => {}
            _ => return Err(Failed::Client),
        }
    }
}

/// Reads the backend's response head into `response` within `limit`.
async fn read_response(up: &mut Upstream, response: &mut Head, to_head: bool, limit: Duration, timer: &mut Timer) -> std::io::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !up.buf.is_empty() {
            match head::response(&up.buf, response, to_head) {
                Ok(Parsed::Complete) => return Ok(()),
                Ok(Parsed::Partial) if up.buf.len() > 64 * 1024 => return Err(std::io::Error::other("the response head is over 64 KiB")),
                Ok(Parsed::Partial) => {}
                Err(_) => return Err(std::io::Error::other("the response is not HTTP/1.x")),
            }
        }
        room(&mut up.buf);
        match timer.until(deadline, up.stream.read_buf(&mut up.buf)).await {
            Some(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
            None => return Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// Sends the response head in `out` and the body after it from `up` to the client.
async fn relay<W: AsyncWrite + Unpin>(up: &mut Upstream, client: &mut W, mut body: Progress, out: &mut Vec<u8>, idle: Duration, timer: &mut Timer) -> std::io::Result<()> {
    let bad = |why: &'static str| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let n = body.take(&up.buf[..up.buf.len().min(COALESCE)]).map_err(bad)?;
    out.extend_from_slice(&up.buf[..n]);
    up.buf.advance(n);
    client.write_all(out).await?;
    loop {
        if !up.buf.is_empty() && !body.done() {
            let n = body.take(&up.buf).map_err(bad)?;
            client.write_all(&up.buf[..n]).await?;
            up.buf.advance(n);
        }
        if body.done() {
            return client.flush().await;
        }
        room(&mut up.buf);
        match timer.within(idle, up.stream.read_buf(&mut up.buf)).await {
            Some(Ok(0)) if matches!(body, Progress::UntilClose) => body = Progress::Done,
            Some(Ok(n)) if n > 0 => {}
            Some(Err(e)) => return Err(e),
            _ => return Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

/// After a 101: the response head in `out` to the client, then the two connections joined
/// byte for byte (what either side sent early included) until both close.
async fn join<S>(client: &mut Conn<S>, mut up: Upstream, out: &mut Vec<u8>) -> Next
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    out.extend_from_slice(&up.buf);
    up.buf.clear();
    if send(&mut client.io, out).await.is_err() {
        return Next::Done;
    }
    if !client.buf.is_empty() {
        if up.stream.write_all(&client.buf).await.is_err() {
            return Next::Done;
        }
        client.buf.clear();
    }
    let _ = tokio::io::copy_bidirectional(&mut client.io, &mut up.stream).await;
    Next::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_targets_become_origin_form_with_their_authority() {
        assert_eq!(split_target(b"/a?b"), (&b"/a?b"[..], None));
        assert_eq!(split_target(b"http://Example.com:8080/x?y"), (&b"/x?y"[..], Some(&b"Example.com:8080"[..])));
        assert_eq!(split_target(b"https://example.com"), (&b"/"[..], Some(&b"example.com"[..])));
        let mut host = String::new();
        assert!(host_name(b"Example.com:8080", &mut host) && host == "example.com");
        assert!(host_name(b"[2001:db8::1]:80", &mut host) && host == "2001:db8::1");
        assert!(!host_name(b"", &mut host));
    }
}
