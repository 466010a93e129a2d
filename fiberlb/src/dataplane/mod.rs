//! The dataplane every fiberlb node runs: the plan (`plan`) built from the followed resources
//! on each change, and one listener task per planned listener, started, moved or stopped by a
//! reconciler (`photon_reconcile`). Connections and requests read the plan as it is when they
//! arrive, so backends, pools and rules change under load without a reload; a listener stopped
//! stops accepting, and its open connections finish.

pub mod h1;
pub mod health;
pub mod http;
pub mod idle;
pub mod lazy_stream;
pub mod metrics;
pub mod plan;
pub mod proxy_protocol;
pub mod sni;
pub mod splice;
pub mod stats;
pub mod tcp;
pub mod threads;
pub mod timer;
pub mod tls;
pub mod udp;
pub mod vip;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use photon_reconcile::{Queue, Reconciler, Requeue};
use photon_resource::Layout;
use photon_tls::seal::SealKey;
use tokio_util::sync::CancellationToken;

use crate::model::backend::AdminState;
use crate::model::listener::Protocol;
use plan::{ListenerPlan, Plan};
use stats::Stats;

/// What listener tasks share: the current plan, the backends' live counters, and the HTTP
/// client with its keep-alive connections to backends.
pub struct Shared {
    plan: RwLock<Arc<Plan>>,
    /// Bumped with every new plan: connections keep theirs until it moves.
    generation: std::sync::atomic::AtomicU64,
    pub stats: Stats,
    pub http: http::HttpClient,
    /// hyper's client to pools whose backends speak HTTP/2.
    pub http2: http::HttpClient,
    pub metrics: Arc<metrics::Metrics>,
    /// Log every connection (L4) and request (L7) at info, target `fiberlb::access`.
    pub access_log: bool,
}

impl Default for Shared {
    fn default() -> Self {
        Self { plan: RwLock::default(), generation: Default::default(), stats: Stats::default(), http: http::client(false), http2: http::client(true), metrics: metrics::Metrics::new(), access_log: true }
    }
}

impl Shared {
    pub fn plan(&self) -> Arc<Plan> {
        match self.plan.read() {
            Ok(plan) => plan.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Which plan is current: it changes whenever the plan does.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn listener(&self, key: &str) -> Option<Arc<ListenerPlan>> {
        self.plan().listeners.get(key).cloned()
    }

    /// What `look` finds in the plan, as a long-lived task keeps it (`Followed`).
    pub fn follow<T, F: Fn(&Shared) -> T>(&self, look: F) -> Followed<T, F> {
        Followed { generation: self.generation(), value: look(self), look }
    }

    /// A backend's admin state and drain deadline now (`None`: no longer configured).
    pub fn admin_state(&self, backend_key: &str) -> Option<(AdminState, u64)> {
        let plan = self.plan();
        let found = plan.backends().find(|(_, b)| b.key == backend_key).map(|(_, b)| (b.spec.admin_state, b.spec.drain_deadline_ms));
        found
    }
}

/// Something looked up in the plan (a listener's plan, a backend's admin state) and kept by a
/// long-lived task: looked up again only when the plan has changed, so using it costs one
/// atomic load, not a walk over the plan.
pub struct Followed<T, F> {
    generation: u64,
    value: T,
    look: F,
}

impl<T, F: Fn(&Shared) -> T> Followed<T, F> {
    /// The value as the current plan has it.
    pub fn current(&mut self, shared: &Shared) -> &T {
        let now = shared.generation();
        if now != self.generation {
            self.generation = now;
            self.value = (self.look)(shared);
        }
        &self.value
    }
}

struct Running {
    bind: SocketAddr,
    protocol: Protocol,
    stop: CancellationToken,
}

pub struct Dataplane {
    layout: Layout,
    /// Unseals listeners' private keys.
    keys: Arc<SealKey>,
    shared: Arc<Shared>,
    running: Mutex<BTreeMap<String, Running>>,
    queue: Arc<Queue<String>>,
    probes: Arc<health::Probes>,
    /// The VIP reconciler's queue, told of every plan change (when VIPs are managed here).
    vips: Mutex<Option<Arc<Queue<std::net::IpAddr>>>>,
    /// Where TCP and HTTP listeners accept and their connections run.
    threads: Arc<threads::Threads>,
}

impl Dataplane {
    pub fn new(layout: Layout, keys: Arc<SealKey>, options: &crate::config::DataplaneSection) -> std::io::Result<Arc<Self>> {
        let shared = Arc::new(Shared { access_log: options.access_log, ..Shared::default() });
        let probes = health::Probes::new(shared.clone());
        let threads = Arc::new(threads::Threads::start(options.threads)?);
        Ok(Arc::new(Self { layout, keys, shared, running: Mutex::default(), queue: Arc::default(), probes, vips: Mutex::default(), threads }))
    }

    /// The health checks' reconciler, fed by the same plan.
    pub fn probes(&self) -> Arc<health::Probes> {
        self.probes.clone()
    }

    pub fn queue(&self) -> Arc<Queue<String>> {
        self.queue.clone()
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Rebuilds the plan from the node's copy of the resources and queues every listener.
    pub fn apply(&self, items: &BTreeMap<String, Vec<u8>>) {
        let plan = Plan::build(&self.layout, items, &self.keys, &self.shared.metrics, &self.shared.stats);
        let configured: BTreeSet<String> = plan.backends().map(|(_, b)| b.key.clone()).collect();
        self.shared.stats.retain(|key| configured.contains(key));
        match self.shared.plan.write() {
            Ok(mut current) => *current = Arc::new(plan),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(plan),
        }
        self.shared.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.queue.push_all(self.keys());
        self.probes.queue().push_all(self.probes.keys());
        if let Some(vips) = self.vips.lock().ok().and_then(|v| v.clone()) {
            let plan = self.shared.plan();
            vips.push_all(plan.listeners.values().map(|l| l.bind.ip()));
        }
    }

    /// Tells `queue` (the VIP reconciler's) of every plan change from now on.
    pub fn watch_vips(&self, queue: Arc<Queue<std::net::IpAddr>>) {
        if let Ok(mut vips) = self.vips.lock() {
            *vips = Some(queue);
        }
    }

    /// Sets the backends' gauges from the live counters (every few seconds, and before a
    /// scrape would be nicer, but a gauge a second old is what operators read anyway).
    pub fn refresh_gauges(&self) {
        let plan = self.shared.plan();
        let rows = plan.pools.iter().flat_map(|((owner, lb, pool_name), pool)| {
            pool.backends.iter().map(move |b| {
                let live = &b.live;
                let labels = metrics::BackendLabels {
                    project: format!("{}/{}", owner.org, owner.project),
                    loadbalancer: lb.clone(),
                    pool: pool_name.clone(),
                    backend: b.name.clone(),
                };
                let active = live.active.load(std::sync::atomic::Ordering::Relaxed) as i64;
                (labels, active, live.up())
            })
        });
        self.shared.metrics.backends(rows);
    }

    /// Listeners accepting now.
    pub fn listening(&self) -> usize {
        self.running.lock().map(|r| r.len()).unwrap_or(0)
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        match self.running.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Dataplane {
    /// Accepts on `listener` on every dataplane thread until `stop` (each thread its own copy
    /// of the socket in its own reactor).
    fn accept_on_every_thread<F, Fut>(&self, listener: std::net::TcpListener, key: &str, stop: &CancellationToken, serve: F) -> std::io::Result<()>
    where
        F: Fn(std::net::TcpStream, SocketAddr, Arc<ListenerPlan>, Arc<Shared>) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        for (me, handle) in self.threads.handles().iter().enumerate() {
            let copy = listener.try_clone()?;
            let (key, shared, stop, serve) = (key.to_string(), self.shared.clone(), stop.clone(), serve.clone());
            let threads = self.threads.clone();
            handle.spawn(async move {
                // SAFETY (I/O safety): the AsyncFd owns its copy of the socket and neither
                // replaces nor closes it while registered.
                match unsafe { tokio::io::unix::AsyncFd::register_with_interest(copy, tokio::io::Interest::READABLE) } {
                    Ok(listener) => accept(listener, key, shared, stop, serve, (threads, me)).await,
                    Err(e) => tracing::error!(listener = %key, error = %e, "cannot accept on a dataplane thread"),
                }
            });
        }
        Ok(())
    }
}

impl Reconciler for Dataplane {
    type Key = String;

    fn keys(&self) -> Vec<String> {
        let mut keys: BTreeSet<String> = self.shared.plan().listeners.keys().cloned().collect();
        keys.extend(self.running().keys().cloned());
        keys.into_iter().collect()
    }

    async fn reconcile(&self, key: &String) -> Result<Requeue, String> {
        let desired = self.shared.listener(key);
        let mut running = self.running();
        if let Some(current) = running.get(key) {
            let same = desired.as_ref().is_some_and(|d| d.bind == current.bind && d.spec.protocol == current.protocol);
            if same && !current.stop.is_cancelled() {
                return Ok(Requeue::Done);
            }
            current.stop.cancel();
            tracing::info!(listener = %key, bind = %current.bind, "listener stopped; its open connections finish");
            running.remove(key);
        }
        let Some(desired) = desired else { return Ok(Requeue::Done) };
        let protocol = desired.spec.protocol;
        let stop = CancellationToken::new();
        let shared = self.shared.clone();
        let cannot = |e: std::io::Error| format!("cannot listen on {} ({protocol:?}): {e}", desired.bind);
        match protocol {
            Protocol::Udp => {
                let socket = udp::bind(desired.bind).map_err(cannot)?;
                tokio::spawn(udp::serve(socket, key.clone(), shared, stop.clone()));
            }
            Protocol::Http | Protocol::Https => {
                let listener = bind(desired.bind).map_err(cannot)?;
                client_speaks_first(&listener);
                let listener_key = key.clone();
                self.accept_on_every_thread(listener, key, &stop, move |stream, peer, plan, shared| {
                    http::accepted(lazy_stream::LazyStream::new(stream), peer, listener_key.clone(), plan, shared)
                })
                .map_err(cannot)?;
            }
            Protocol::Tcp | Protocol::TlsPassthrough => {
                let listener = bind(desired.bind).map_err(cannot)?;
                self.accept_on_every_thread(listener, key, &stop, |stream, peer, plan, shared| async move {
                    match tokio::net::TcpStream::from_std(stream) {
                        Ok(stream) => tcp::connection(stream, peer, plan, shared).await,
                        Err(e) => tracing::warn!(error = %e, "a connection could not join the event loop"),
                    }
                })
                .map_err(cannot)?;
            }
        }
        tracing::info!(listener = %key, bind = %desired.bind, protocol = ?desired.spec.protocol, "listening");
        running.insert(key.clone(), Running { bind: desired.bind, protocol: desired.spec.protocol, stop });
        Ok(Requeue::Done)
    }
}

/// A socket of `kind` bound to `addr` with `IP_FREEBIND`, so a node that does not hold a load
/// balancer's address yet is ready the moment it takes it over.
pub fn freebind(addr: SocketAddr, kind: socket2::Type, protocol: socket2::Protocol) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), kind, Some(protocol))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv4() {
        socket.set_freebind_v4(true)?;
    } else {
        socket.set_freebind_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// How long the kernel holds a connection whose client has sent nothing yet.
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// `TCP_DEFER_ACCEPT` (nginx's `deferred`, HAProxy's `defer-accept`) on a listener whose
/// clients speak first (HTTP, TLS): a connection is accepted once its first bytes are there,
/// so serving it starts with a read that finds the request, and one that never sends anything
/// costs the kernel a timer instead of us a task. Only an optimisation: failing leaves plain
/// accepts.
fn client_speaks_first(listener: &std::net::TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: a setsockopt(2) call with an int the kernel copies.
    let set = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&DEFER_ACCEPT_SECS as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "TCP_DEFER_ACCEPT not set");
    }
}

/// A listening TCP socket on `addr` (`freebind`), not yet in any reactor.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = freebind(addr, socket2::Type::STREAM, socket2::Protocol::TCP)?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Accepts on `listener` until `stop` (as dataplane thread `me`), handing each connection (with
/// the listener's plan as it is now) to `serve` on a task of its own, on this thread or, if
/// this one is busier, the least loaded (`threads::Threads::place`); connections already open
/// are not stopped with it. A connection comes out of the kernel non-blocking and not in any
/// reactor: moving it costs no re-registration, and `serve` registers it only if it must
/// (`lazy_stream`).
pub async fn accept<F, Fut>(
    listener: tokio::io::unix::AsyncFd<std::net::TcpListener>,
    key: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
    serve: F,
    (threads, me): (Arc<threads::Threads>, usize),
) where
    F: Fn(std::net::TcpStream, SocketAddr, Arc<ListenerPlan>, Arc<Shared>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut followed = shared.follow(|s| s.listener(&key));
    loop {
        let mut ready = tokio::select! {
            _ = stop.cancelled() => return,
            ready = listener.readable() => match ready {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::error!(listener = %key, error = %e, "the listening socket failed");
                    return;
                }
            },
        };
        let (stream, peer) = match ready.try_io(|inner| accept_nonblocking(inner.get_ref())) {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(e)) => {
                // Out of descriptors or memory, say: wait rather than spin.
                tracing::warn!(listener = %key, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            Err(_would_block) => continue,
        };
        let _ = stream.set_nodelay(true);
        let Some(plan) = followed.current(&shared).clone() else { continue };
        plan.metrics.connections.inc();
        let there = threads.place(me);
        let (counted, work) = (threads.count(there), serve(stream, peer, plan, shared.clone()));
        let work = async move {
            let _counted = counted;
            work.await
        };
        if there == me {
            tokio::spawn(work);
        } else {
            threads.spawn_on(there, work);
        }
    }
}

/// One connection from `listener`, non-blocking from the start (`accept4` with
/// `SOCK_NONBLOCK`: no `fcntl` after).
fn accept_nonblocking(listener: &std::net::TcpListener) -> std::io::Result<(std::net::TcpStream, SocketAddr)> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: all zeros is a valid sockaddr_storage; accept4 writes at most `len` bytes of it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: an accept4(2) call on a listening socket we own, into the storage above.
    let fd = unsafe {
        libc::accept4(listener.as_raw_fd(), (&mut storage as *mut libc::sockaddr_storage).cast(), &mut len, libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: accept4 returned a new connected socket that nothing else owns.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    match peer_of(&storage) {
        Some(peer) => Ok((stream, peer)),
        None => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "accepted a connection that has no IP address")),
    }
}

/// The IPv4 or IPv6 address in `storage`, as accept4 filled it.
fn peer_of(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in (smaller, aligned alike).
            let v4 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(v4.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6 (smaller, aligned alike).
            let v6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(ip, u16::from_be(v6.sin6_port), v6.sin6_flowinfo, v6.sin6_scope_id)))
        }
        _ => None,
    }
}
