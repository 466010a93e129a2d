//! L4 UDP with flow tracking: the first datagram from a client address picks a backend (as the
//! plan says then) and opens a flow — a socket of ours connected to that backend — and the
//! client's later datagrams follow it, replies going back from the listener's address. A flow
//! with no datagram either way for the listener's idle timeout is closed; so is one whose
//! backend refuses (ICMP port unreachable), counting toward the backend's ejection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use photon_resource::meta::now_ms;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::balance::maglev;
use crate::model::pool::HashOn;

use super::stats::InFlight;
use super::Shared;

/// Flows one listener keeps at most: a flood of source addresses must not grow memory.
const MAX_FLOWS: usize = 65_536;

struct Flow {
    upstream: Arc<UdpSocket>,
    last: Arc<AtomicU64>,
}

type Flows = Arc<Mutex<HashMap<SocketAddr, Flow>>>;

fn lock(flows: &Flows) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Flow>> {
    match flows.lock() {
        Ok(f) => f,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Serves datagrams on `socket` until `stop`; flows end with it.
pub async fn serve(socket: UdpSocket, key: String, shared: Arc<Shared>, stop: CancellationToken) {
    let socket = Arc::new(socket);
    let flows: Flows = Arc::default();
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, client) = tokio::select! {
            _ = stop.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(received) => received,
                Err(e) => {
                    tracing::debug!(listener = %key, error = %e, "UDP receive failed");
                    continue;
                }
            },
        };
        let existing = lock(&flows).get(&client).map(|f| (f.upstream.clone(), f.last.clone()));
        let (upstream, last) = match existing {
            Some(flow) => flow,
            None => match open(&key, client, &shared, &socket, &flows, &stop).await {
                Some(flow) => flow,
                None => continue,
            },
        };
        last.store(now_ms(), Ordering::Relaxed);
        if let Err(e) = upstream.send(&buf[..n]).await {
            tracing::debug!(listener = %key, %client, error = %e, "UDP send to backend failed");
        }
    }
}

/// A new flow for `client`: a backend chosen, a socket connected to it, and the task carrying
/// its replies back until the flow idles out.
async fn open(
    key: &str,
    client: SocketAddr,
    shared: &Arc<Shared>,
    socket: &Arc<UdpSocket>,
    flows: &Flows,
    stop: &CancellationToken,
) -> Option<(Arc<UdpSocket>, Arc<AtomicU64>)> {
    if lock(flows).len() >= MAX_FLOWS {
        tracing::warn!(listener = %key, "UDP flow table full; datagram dropped");
        return None;
    }
    let plan = shared.listener(key)?;
    let pool = plan.default_pool()?.clone();
    let hash = pool.spec.hash_on.as_ref().or(pool.spec.affinity.as_ref()).map(|on| match on {
        HashOn::SourceAddress | HashOn::Header { .. } => maglev::key_of(client.ip()),
    });
    let candidates = pool.candidates(&[]);
    let chosen = pool.balancer.pick(&candidates, hash)?;
    let backend = &pool.backends[chosen];
    let target = SocketAddr::new(backend.spec.address, backend.spec.port);
    let local: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let upstream = UdpSocket::bind(local).await.ok()?;
    upstream.connect(target).await.ok()?;
    let upstream = Arc::new(upstream);
    let last = Arc::new(AtomicU64::new(now_ms()));
    lock(flows).insert(client, Flow { upstream: upstream.clone(), last: last.clone() });
    let stats = backend.live.clone();
    let in_flight = InFlight::new(stats.clone());
    let idle = Duration::from_millis(plan.spec.timeouts.idle_ms);
    let (socket, flows, stop) = (socket.clone(), flows.clone(), stop.clone());
    let (reply_from, reply_last, pool_spec, name) = (upstream.clone(), last.clone(), pool.spec.clone(), backend.name.clone());
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let mut buf = vec![0u8; 65_535];
        loop {
            let step = idle.min(Duration::from_secs(1));
            tokio::select! {
                _ = stop.cancelled() => break,
                received = tokio::time::timeout(step, reply_from.recv(&mut buf)) => match received {
                    Ok(Ok(n)) => {
                        reply_last.store(now_ms(), Ordering::Relaxed);
                        stats.succeeded();
                        let _ = socket.send_to(&buf[..n], client).await;
                    }
                    Ok(Err(e)) => {
                        let ejected = stats.failed(&pool_spec);
                        tracing::warn!(backend = %name, %target, error = %e, ejected, "UDP backend refused; flow closed");
                        break;
                    }
                    Err(_) => {
                        if now_ms().saturating_sub(reply_last.load(Ordering::Relaxed)) >= idle.as_millis() as u64 {
                            break;
                        }
                    }
                },
            }
        }
        lock(&flows).remove(&client);
    });
    Some((upstream, last))
}

/// A UDP socket on `addr` (`super::freebind`, like the TCP listeners).
pub fn bind(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(super::freebind(addr, socket2::Type::DGRAM, socket2::Protocol::UDP)?.into())
}
