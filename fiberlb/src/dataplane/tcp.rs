//! L4 TCP (and TLS passthrough, routed by the client's SNI without terminating: the
//! ClientHello is peeked, never consumed): accept, choose a backend of the listener's pool
//! (for passthrough, of the first rule whose host matches the SNI) as the plan says now, connect
//! (another backend if that fails, counting the failure toward passive ejection), send the
//! PROXY header if the pool asks, then splice both ways (`super::splice`) until both sides are done, the connection
//! idles past the listener's timeout, or its backend is disabled (at once) or drained (after
//! its deadline).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use photon_resource::meta::now_ms;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::balance::maglev;
use crate::model::backend::AdminState;
use crate::model::listener::{host_matches, Protocol};
use crate::model::pool::HashOn;

use super::plan::{ListenerPlan, PoolPlan, ATTEMPTS};
use super::splice::Pipe;
use super::stats::InFlight;
use super::timer::Timer;
use super::{proxy_protocol, Shared};

/// How often a quiet connection looks at its backend's admin state.
const RECHECK: Duration = Duration::from_secs(1);

/// Serves one client connection of a TCP or TLS passthrough listener.
pub async fn connection(client: TcpStream, peer: SocketAddr, plan: Arc<ListenerPlan>, shared: Arc<Shared>) {
    let pool = if plan.spec.protocol == Protocol::TlsPassthrough {
        let sni = match tokio::time::timeout(HELLO, peek_sni(&client)).await {
            Ok(Ok(sni)) => sni,
            Ok(Err(NotTls)) => {
                tracing::debug!(listener = %plan.name, client = %peer, "not a TLS ClientHello; closed");
                return;
            }
            Err(_) => {
                tracing::debug!(listener = %plan.name, client = %peer, "no ClientHello in time; closed");
                return;
            }
        };
        pool_for_sni(&plan, sni.as_deref())
    } else {
        plan.default_pool().cloned()
    };
    let Some(pool) = pool else {
        tracing::debug!(listener = %plan.name, "no pool to send a connection to; closed");
        return;
    };
    let Some((backend, upstream)) = connect(&pool, peer, &plan).await else {
        tracing::info!(listener = %plan.name, pool = %pool.name, client = %peer, "no backend reachable; connection closed");
        return;
    };
    let stats = pool.backends[backend].live.clone();
    let _in_flight = InFlight::new(stats);
    let backend_key = pool.backends[backend].key.clone();
    let admin_state = {
        let key = backend_key.clone();
        std::sync::Mutex::new(shared.follow(move |s: &Shared| s.admin_state(&key)))
    };
    let idle = Duration::from_millis(plan.spec.timeouts.idle_ms);
    let local = client.local_addr().unwrap_or(plan.bind);
    let header = proxy_protocol::header(pool.spec.proxy_protocol, peer, local);
    let should_close = {
        let shared = shared.clone();
        let listener = plan.name.clone();
        let drain_started = AtomicU64::new(0);
        move || match *admin_state.lock().unwrap_or_else(std::sync::PoisonError::into_inner).current(&shared) {
            None | Some((AdminState::Disabled, _)) => true,
            Some((AdminState::Drain, deadline_ms)) => {
                let started = drain_started.load(Ordering::Relaxed);
                if started == 0 {
                    drain_started.store(now_ms(), Ordering::Relaxed);
                    false
                } else {
                    let over = now_ms() >= started + deadline_ms;
                    if over {
                        tracing::info!(%listener, backend = %backend_key, "drain deadline passed; connection closed");
                    }
                    over
                }
            }
            Some((AdminState::Enabled, _)) => false,
        }
    };
    let started = std::time::Instant::now();
    let (up, down) = pump(client, upstream, &header, idle, should_close).await;
    if shared.access_log {
        tracing::info!(
            target: "fiberlb::access",
            listener = %plan.name, loadbalancer = %plan.loadbalancer, client = %peer, pool = %pool.name,
            backend = %pool.backends[backend].name, bytes_up = up, bytes_down = down,
            duration_ms = started.elapsed().as_millis() as u64,
        );
    }
}

/// A ClientHello must arrive within this on a passthrough listener.
const HELLO: Duration = Duration::from_secs(10);
/// The largest ClientHello looked at (one TLS record and a bit).
const HELLO_MAX: usize = 16 * 1024 + 5;

/// What arrived on a passthrough listener is not a TLS ClientHello.
struct NotTls;

/// The server name a TLS client asks for, read from its ClientHello without consuming it
/// (rustls parses a copy of the peeked bytes); `Ok(None)`: a hello without SNI.
async fn peek_sni(client: &TcpStream) -> Result<Option<String>, NotTls> {
    let mut buf = vec![0u8; HELLO_MAX];
    let mut seen = 0;
    loop {
        let n = client.peek(&mut buf).await.map_err(|_| NotTls)?;
        if n == 0 {
            return Err(NotTls);
        }
        if n > seen {
            seen = n;
            let mut acceptor = rustls::server::Acceptor::default();
            let mut bytes = &buf[..n];
            acceptor.read_tls(&mut bytes).map_err(|_| NotTls)?;
            // `accept` says whether the hello is whole, and refuses what is not TLS.
            match acceptor.accept() {
                Ok(Some(accepted)) => return Ok(accepted.client_hello().server_name().map(str::to_ascii_lowercase)),
                Ok(None) if n < HELLO_MAX => {}
                _ => return Err(NotTls),
            }
        }
        // More of the hello is on its way; peek returns at once while bytes wait unread.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The pool of the first rule whose host matches `sni`, else the default pool.
fn pool_for_sni(plan: &ListenerPlan, sni: Option<&str>) -> Option<Arc<PoolPlan>> {
    for rule in &plan.rules {
        let (Some(want), Some(sni)) = (&rule.spec.matches.host, sni) else { continue };
        let hit = host_matches(want, sni);
        if let (true, crate::model::rule::Action::Forward { pool }) = (hit, &rule.spec.action) {
            return plan.pools.get(pool).cloned();
        }
    }
    plan.default_pool().cloned()
}

/// A backend of `pool` that accepts a connection, tried up to `ATTEMPTS` times.
async fn connect(pool: &PoolPlan, peer: SocketAddr, plan: &ListenerPlan) -> Option<(usize, TcpStream)> {
    let timeout = Duration::from_millis(plan.spec.timeouts.connect_ms);
    let hash = match pool.spec.hash_on.as_ref().or(pool.spec.affinity.as_ref()) {
        Some(HashOn::SourceAddress) => Some(maglev::key_of(peer.ip())),
        // Headers are L7's; over L4 the source address is the key.
        Some(HashOn::Header { .. }) => Some(maglev::key_of(peer.ip())),
        None => None,
    };
    let mut tried = Vec::new();
    for _ in 0..ATTEMPTS.min(pool.backends.len()) {
        let candidates = pool.candidates(&tried);
        let chosen = pool.balancer.pick(&candidates, hash)?;
        tried.push(chosen);
        let backend = &pool.backends[chosen];
        let address = SocketAddr::new(backend.spec.address, backend.spec.port);
        match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                backend.live.succeeded();
                let _ = stream.set_nodelay(true);
                return Some((chosen, stream));
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {} ms", timeout.as_millis()),
                };
                let ejected = backend.live.failed(&pool.spec);
                tracing::warn!(pool = %pool.name, backend = %backend.name, %address, %error, ejected, "backend connection failed");
            }
        }
    }
    None
}

/// Copies both ways (spliced: the bytes never enter the process). Each side's end is passed
/// on as a half close; the connection ends when both directions have, when neither moved for
/// `idle`, or when `should_close` says so. Returns the bytes sent up (client to backend) and
/// down.
async fn pump(client: TcpStream, upstream: TcpStream, header: &[u8], idle: Duration, should_close: impl Fn() -> bool) -> (u64, u64) {
    let mut upstream = upstream;
    if !header.is_empty() && upstream.write_all(header).await.is_err() {
        return (0, 0);
    }
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let last = AtomicU64::new(now_ms());
    let idle_ms = idle.as_millis() as u64;
    let step = idle.min(RECHECK);
    let ends = End { last: &last, step, idle_ms, should_close: &should_close };
    let upload = one_way(&client, &upstream, &ends, &up);
    let download = one_way(&upstream, &client, &ends, &down);
    tokio::pin!(upload, download);
    // One direction ending cleanly leaves the other running (half close); an error or a
    // timeout on either ends both.
    tokio::select! {
        clean = &mut upload => if clean { download.await; },
        clean = &mut download => if clean { upload.await; },
    }
    (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed))
}

/// What ends a direction besides its reader's end: shared by both directions.
struct End<'a, F> {
    /// When either direction last moved data.
    last: &'a AtomicU64,
    step: Duration,
    idle_ms: u64,
    should_close: &'a F,
}

impl<F: Fn() -> bool> End<'_, F> {
    /// Quiet for a step: whether to give up (closing, or idle past the limit).
    fn over(&self) -> bool {
        (self.should_close)() || now_ms().saturating_sub(self.last.load(Ordering::Relaxed)) >= self.idle_ms
    }
}

/// Splices `from` to `to`: true when `from` ended cleanly (and `to` was shut down for writing
/// after it), false on an error, an idle connection or `should_close`.
async fn one_way<F: Fn() -> bool>(from: &TcpStream, to: &TcpStream, end: &End<'_, F>, moved: &AtomicU64) -> bool {
    let Ok(mut pipe) = Pipe::new() else { return false };
    let mut timer = Timer::default();
    let would_block = |e: &std::io::Error| e.kind() == std::io::ErrorKind::WouldBlock;
    loop {
        match timer.within(end.step, from.readable()).await {
            None if end.over() => return false,
            None => continue,
            Some(Err(_)) => return false,
            Some(Ok(())) => {}
        }
        match pipe.fill(from) {
            Ok(0) => {
                let _ = socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write);
                return true;
            }
            Ok(n) => {
                moved.fetch_add(n as u64, Ordering::Relaxed);
                end.last.store(now_ms(), Ordering::Relaxed);
            }
            Err(e) if would_block(&e) => continue,
            Err(_) => return false,
        }
        while !pipe.is_empty() {
            match timer.within(end.step, to.writable()).await {
                None if end.over() => return false,
                None | Some(Ok(())) => {}
                Some(Err(_)) => return false,
            }
            match pipe.drain(to) {
                Ok(_) => {}
                Err(e) if would_block(&e) => {}
                Err(_) => return false,
            }
        }
    }
}
