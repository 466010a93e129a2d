//! L7 over hyper: HTTP/2 and HTTP/1.0 clients, and requests for pools whose backends speak
//! HTTP/2 (HTTP/1.1 otherwise takes `super::h1`'s path), over TLS terminated here for HTTPS;
//! TLS itself is accepted here for both. Each
//! request is routed as the plan says when it arrives — the first matching rule by priority
//! (host, path prefix or regex, headers) forwards to its pool or redirects, else the default
//! pool — and sent to a backend over a keep-alive pool of HTTP/1.1 or HTTP/2 connections with
//! `X-Forwarded-For`/`-Proto`/`-Host` and `Forwarded` added and hop-by-hop headers removed.
//! A request without a body and with an idempotent method is retried on another backend when
//! a connection to one fails or it gets no response. An HTTP/1.1 upgrade (WebSocket) is passed on, and once the backend
//! switches protocols the two connections are joined. Over the listener's limits: 431 (headers), 413 (body), 504 (no
//! response within the request timeout).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;

use crate::balance::maglev;
use crate::model::pool::{BackendProtocol, HashOn};
use crate::model::rule::Action;

use super::idle;
use super::plan::{host_without_port, CompiledRule, ListenerPlan, PoolPlan, ATTEMPTS};
use super::stats::InFlight;
use super::Shared;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;
pub type HttpClient = Client<HttpConnector, Body>;

/// A TLS handshake must finish within this.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A client the node's HTTP listeners share (this path's): keep-alive connections to
/// backends, over HTTP/1.1 or (`http2`) HTTP/2 with prior knowledge.
pub fn client(http2: bool) -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .http2_only(http2)
        .timer(TokioTimer::new())
        .build(connector)
}

/// Serves one client connection of listener `key` (plain, or TLS terminated here for HTTPS):
/// any byte stream, so the fuzz target drives it from memory. HTTP/1.1 takes the proxy path of
/// `super::h1`; HTTP/2 (negotiated by ALPN) is served by hyper.
pub async fn connection<S>(stream: S, peer: SocketAddr, key: String, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(plan) = shared.listener(&key) else { return };
    accepted(stream, peer, key, plan, shared).await;
}

/// [`connection`] with the listener's plan as it was when the connection was accepted.
pub async fn accepted<S>(stream: S, peer: SocketAddr, key: String, plan: Arc<ListenerPlan>, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(config) = plan.tls.clone() else {
        return super::h1::serve(stream, peer, key, shared, false).await;
    };
    // Boxed: the handshake's and TLS stream's state would make every plain connection's
    // future (moved whole when spawned) that much larger.
    Box::pin(terminate_tls(stream, config, peer, key, plan, shared)).await;
}

/// TLS terminated here, then HTTP/2 (ALPN h2) by hyper or HTTP/1.1 by `super::h1`.
async fn terminate_tls<S>(stream: S, config: Arc<rustls::ServerConfig>, peer: SocketAddr, key: String, plan: Arc<ListenerPlan>, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let tls = match tokio::time::timeout(HANDSHAKE, tokio_rustls::TlsAcceptor::from(config).accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(listener = %plan.name, client = %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        Box::pin(serve_hyper(tls, peer, key, shared, true)).await;
    } else {
        super::h1::serve(tls, peer, key, shared, true).await;
    }
}

/// Serves a (decrypted) client connection with hyper: HTTP/2, and HTTP/1.0.
pub async fn serve_hyper<S>(stream: S, peer: SocketAddr, key: String, shared: Arc<Shared>, https: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some(plan) = shared.listener(&key) else { return };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(plan.spec.timeouts.request_ms))
        .max_buf_size((plan.spec.max_header_bytes as usize).max(8192));
    builder.http2().timer(TokioTimer::new()).max_header_list_size(plan.spec.max_header_bytes);
    let service = hyper::service::service_fn(move |request| {
        let (key, shared) = (key.clone(), shared.clone());
        async move { Ok::<_, Infallible>(handle(request, peer, &key, &shared, https).await) }
    });
    let activity = idle::Activity::new();
    let limits = (plan.spec.timeouts.request_ms, plan.spec.timeouts.idle_ms);
    let io = TokioIo::new(idle::Tracked::new(stream, activity.clone()));
    if let Err(e) = watched(builder.serve_connection_with_upgrades(io, service), &activity, limits).await {
        tracing::debug!(listener = %plan.name, client = %peer, error = %e, "HTTP connection ended with an error");
    }
}

/// Serves `connection` until it ends or idles out: nothing received within the request
/// timeout (`limits.0`; slow or silent clients), or nothing moving for the idle timeout
/// (`limits.1`) after that. It is then shut down gracefully (a request in flight finishes),
/// and dropped if that takes longer than the request timeout again.
async fn watched<C, E>(connection: C, activity: &idle::Activity, (request_ms, idle_ms): (u64, u64)) -> Result<(), E>
where
    C: std::future::Future<Output = Result<(), E>> + GracefulConnection,
{
    tokio::pin!(connection);
    let check = Duration::from_millis(request_ms.min(idle_ms).clamp(50, 1000));
    loop {
        tokio::select! {
            done = connection.as_mut() => return done,
            _ = tokio::time::sleep(check) => {
                if activity.idle(request_ms, idle_ms) {
                    connection.as_mut().shutdown_gracefully();
                    return match tokio::time::timeout(Duration::from_millis(request_ms), connection.as_mut()).await {
                        Ok(done) => done,
                        Err(_) => Ok(()),
                    };
                }
            }
        }
    }
}

/// hyper-util's automatic connection, which can be asked to shut down gracefully.
trait GracefulConnection {
    fn shutdown_gracefully(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E> GracefulConnection for auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<Body>>,
    S::Future: 'static,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, Body>,
{
    fn shutdown_gracefully(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// A response of ours (not a backend's).
fn reply(status: StatusCode, message: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(format!("{message}\n"))).map_err(|never| match never {}).boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

async fn handle(request: Request<Incoming>, peer: SocketAddr, key: &str, shared: &Shared, https: bool) -> Response<Body> {
    let Some(plan) = shared.listener(key) else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "this listener is being removed");
    };
    let started = std::time::Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let (response, backend) = route(request, peer, &plan, shared, https).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    plan.metrics.request(status, elapsed.as_secs_f64());
    if shared.access_log {
        tracing::info!(
            target: "fiberlb::access",
            listener = %plan.name, loadbalancer = %plan.loadbalancer, client = %peer, %method, %path, status,
            backend = backend.as_deref().unwrap_or("-"), duration_us = elapsed.as_micros() as u64,
        );
    }
    response
}

/// The response to one request, and the backend that gave it (if one did).
async fn route(request: Request<Incoming>, peer: SocketAddr, plan: &Arc<ListenerPlan>, shared: &Shared, https: bool) -> (Response<Body>, Option<String>) {
    let answer = |response| (response, None);
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > plan.spec.max_body_bytes) {
        return answer(reply(StatusCode::PAYLOAD_TOO_LARGE, &plan.body_too_large()));
    }
    let host = host_of(&request);
    let path = request.uri().path();
    let rule = plan.rules.iter().find(|rule| rule.matches(host.as_deref(), path, |name| request.headers().get(name).map(|v| v.as_bytes())));
    let pool = match rule.map(|r| &r.spec.action) {
        Some(Action::Redirect { location, status }) => {
            let mut response = reply(StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND), "redirected");
            if let Ok(location) = HeaderValue::from_str(location) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            return answer(response);
        }
        Some(Action::Forward { pool }) => plan.pools.get(pool),
        None => plan.default_pool(),
    };
    let Some(pool) = pool.cloned() else {
        return answer(reply(StatusCode::SERVICE_UNAVAILABLE, "no pool serves this request"));
    };
    forward(request, peer, plan, &pool, rule, host, https, shared).await
}

/// The request's host without port, lowercase: HTTP/2's authority or the Host header.
fn host_of<B>(request: &Request<B>) -> Option<String> {
    let raw = request.uri().host().or_else(|| request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(host_without_port))?;
    Some(raw.to_ascii_lowercase())
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] =
    ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade"];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// `for=` of `Forwarded` (RFC 7239 §6: IPv6 quoted and bracketed).
fn forwarded_for(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    request: Request<Incoming>,
    peer: SocketAddr,
    plan: &ListenerPlan,
    pool: &Arc<PoolPlan>,
    rule: Option<&CompiledRule>,
    host: Option<String>,
    https: bool,
    shared: &Shared,
) -> (Response<Body>, Option<String>) {
    // An upgrade (WebSocket) keeps its Upgrade and Connection headers; once the backend
    // agrees (101), both connections are handed over and joined byte for byte.
    let mut request = request;
    let http2 = pool.spec.backend_protocol == BackendProtocol::Http2;
    // HTTP/2 keeps `te: trailers` (gRPC asks for trailers with it); nothing else of TE.
    let trailers = http2
        && request.headers().get_all(header::TE).iter().any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("trailers")));
    let upgrade = request.headers().get(header::UPGRADE).cloned().filter(|_| {
        request.headers().get_all(header::CONNECTION).iter().any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("upgrade")))
    });
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if trailers {
        parts.headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(protocol) = &upgrade {
        parts.headers.insert(header::UPGRADE, protocol.clone());
        parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let proto = if https { "https" } else { "http" };
    let client_ip = peer.ip().to_string();
    let xff = match parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {client_ip}"),
        None => client_ip,
    };
    let mut forwarded = format!("for={};proto={proto}", forwarded_for(peer.ip()));
    if let Some(host) = &host {
        forwarded.push_str(&format!(";host={host}"));
    }
    for (name, value) in [("x-forwarded-for", xff), ("x-forwarded-proto", proto.to_string()), ("forwarded", forwarded)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            parts.headers.insert(name, value);
        }
    }
    if let Some(host) = &host {
        if let Ok(value) = HeaderValue::from_str(host) {
            parts.headers.insert("x-forwarded-host", value);
        }
    }
    if let Some(rule) = rule {
        for name in &rule.spec.remove_headers {
            parts.headers.remove(name.as_str());
        }
        for (name, value) in &rule.spec.set_headers {
            if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                parts.headers.insert(name, value);
            }
        }
    }
    // HTTP/2's authority becomes the Host header of the HTTP/1.1 request to the backend.
    if !parts.headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(header::HOST, value);
            }
        }
    }
    let path = parts.uri.path_and_query().cloned().unwrap_or_else(|| hyper::http::uri::PathAndQuery::from_static("/"));
    let bodiless = parts.headers.get(header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0")
        && !parts.headers.contains_key(header::TRANSFER_ENCODING)
        && hyper::body::Body::is_end_stream(&body);
    let retryable = bodiless && matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE);
    let hash = match pool.spec.hash_on.as_ref().or(pool.spec.affinity.as_ref()) {
        Some(HashOn::SourceAddress) => Some(maglev::key_of(peer.ip())),
        Some(HashOn::Header { name }) => Some(parts.headers.get(name.as_str()).map_or_else(|| maglev::key_of(peer.ip()), |v| maglev::key_of(v.as_bytes()))),
        None => None,
    };
    let limit = plan.spec.max_body_bytes as usize;
    let mut body = Some(http_body_util::Limited::new(body, limit).boxed());
    let timeout = Duration::from_millis(plan.spec.timeouts.request_ms);
    let mut tried = Vec::new();
    let attempts = if retryable { ATTEMPTS.min(pool.backends.len()) } else { 1 };
    for _ in 0..attempts.max(1) {
        let candidates = pool.candidates(&tried);
        let Some(chosen) = pool.balancer.pick(&candidates, hash) else { break };
        tried.push(chosen);
        let backend = &pool.backends[chosen];
        let stats = backend.live.clone();
        let _in_flight = InFlight::new(stats.clone());
        let uri = Uri::builder().scheme(hyper::http::uri::Scheme::HTTP).path_and_query(path.clone());
        let uri = match backend.authority.clone().map(|a| uri.authority(a).build()) {
            Some(Ok(uri)) => uri,
            _ => return (reply(StatusCode::BAD_REQUEST, "the request target cannot be forwarded"), None),
        };
        let version = if http2 { hyper::Version::HTTP_2 } else { hyper::Version::HTTP_11 };
        let mut outgoing = Request::builder().method(parts.method.clone()).uri(uri).version(version);
        if let Some(headers) = outgoing.headers_mut() {
            *headers = parts.headers.clone();
        }
        let this_body: Body = match body.take() {
            Some(b) if !retryable => b,
            _ => Empty::new().map_err(|never| match never {}).boxed(),
        };
        let Ok(outgoing) = outgoing.body(this_body) else {
            return (reply(StatusCode::BAD_REQUEST, "the request cannot be forwarded"), None);
        };
        let client = if http2 { &shared.http2 } else { &shared.http };
        match tokio::time::timeout(timeout, client.request(outgoing)).await {
            Ok(Ok(mut response)) => {
                stats.succeeded();
                let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
                if let (true, Some(client_upgrade)) = (switching, client_upgrade) {
                    let backend_upgrade = hyper::upgrade::on(&mut response);
                    let in_flight = InFlight::new(stats.clone());
                    let backend_name = backend.name.clone();
                    tokio::spawn(async move {
                        let _in_flight = in_flight;
                        match tokio::try_join!(client_upgrade, backend_upgrade) {
                            Ok((client, upstream)) => {
                                let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            }
                            Err(e) => tracing::debug!(backend = %backend_name, error = %e, "upgrade failed"),
                        }
                    });
                    return (response.map(|incoming| incoming.map_err(BoxError::from).boxed()), Some(backend.name.clone()));
                }
                let (mut head, incoming) = response.into_parts();
                strip_hop_by_hop(&mut head.headers);
                return (Response::from_parts(head, incoming.map_err(BoxError::from).boxed()), Some(backend.name.clone()));
            }
            Ok(Err(e)) if e.is_connect() => {
                let ejected = stats.failed(&pool.spec);
                tracing::warn!(pool = %pool.name, backend = %backend.name, error = %e, ejected, retryable, "backend connection failed");
            }
            Ok(Err(e)) if retryable => {
                // No response came (a pooled connection closed under the request, say): the
                // request had no body and is idempotent, so another backend may take it.
                let ejected = stats.failed(&pool.spec);
                tracing::warn!(pool = %pool.name, backend = %backend.name, error = %e, ejected, "backend request failed; retrying");
            }
            Ok(Err(e)) => {
                stats.failed(&pool.spec);
                tracing::warn!(pool = %pool.name, backend = %backend.name, error = %e, "backend request failed");
                return (reply(StatusCode::BAD_GATEWAY, "the backend failed to answer"), Some(backend.name.clone()));
            }
            Err(_) => return (reply(StatusCode::GATEWAY_TIMEOUT, "the backend did not answer in time"), Some(backend.name.clone())),
        }
    }
    (reply(StatusCode::BAD_GATEWAY, "no backend could be reached"), None)
}
