//! NOTIFY (RFC 1996): when this node's API has changed a zone, each of its secondaries is told
//! over UDP, TSIG-signed with the secondary's key, and asked again until it answers. One task
//! owns the work (a `JoinSet` per change, ended at shutdown); the API only queues the change.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::tsig;
use super::{Secondary, Transfers};
use crate::store::serial_newer;

/// How long each attempt waits for the answer; after the last, the secondary is given up on
/// (its own refresh timer still brings it up to date).
const ATTEMPTS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(15),
];
/// How long a NOTIFY waits for this node to serve the serial it announces.
const WAIT_SERVED: Duration = Duration::from_secs(10);
const POLL_SERVED: Duration = Duration::from_millis(50);

/// Queues NOTIFYs; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    changes: mpsc::UnboundedSender<(String, u32)>,
}

impl Notifier {
    /// The zone `zone` changed to `serial`: its secondaries are to be told.
    pub fn changed(&self, zone: &str, serial: u32) {
        // Closed only once the task has stopped at shutdown, when nothing is sent any more.
        let _ = self.changes.send((zone.to_string(), serial));
    }
}

/// Starts the task that sends NOTIFYs until `shutdown`.
pub fn spawn(transfers: Transfers, shutdown: CancellationToken, tasks: &TaskTracker) -> Notifier {
    let (changes, mut queue) = mpsc::unbounded_channel::<(String, u32)>();
    tasks.spawn(async move {
        let mut jobs = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                change = queue.recv() => match change {
                    Some((zone, serial)) => {
                        jobs.spawn(notify_zone(transfers.clone(), zone, serial));
                    }
                    None => break,
                },
            }
        }
        jobs.shutdown().await;
    });
    Notifier { changes }
}

/// Tells every secondary of `zone` about `serial`, once this node serves it.
async fn notify_zone(transfers: Transfers, zone: String, serial: u32) {
    let Ok(origin) = Name::from_str(&zone).map(|mut n| {
        n.set_fqdn(true);
        n.to_lowercase()
    }) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + WAIT_SERVED;
    let snapshot = loop {
        match transfers.zone(&origin) {
            Some(snapshot) if snapshot.zone.serial() == serial || serial_newer(snapshot.zone.serial(), serial) => {
                break snapshot
            }
            _ if tokio::time::Instant::now() >= deadline => {
                tracing::warn!(zone = %origin, serial, "not serving the new serial after {WAIT_SERVED:?}; no NOTIFY sent");
                return;
            }
            _ => tokio::time::sleep(POLL_SERVED).await,
        }
    };
    let soa = snapshot.zone.soa().clone();
    let mut sends = JoinSet::new();
    for secondary in snapshot.secondaries.clone() {
        sends.spawn(notify_one(transfers.clone(), origin.clone(), soa.clone(), snapshot.zone.serial(), secondary));
    }
    while sends.join_next().await.is_some() {}
}

/// Sends NOTIFY for `origin` to one secondary until it answers or the attempts run out.
async fn notify_one(transfers: Transfers, origin: Name, soa: Record, serial: u32, secondary: Secondary) {
    let zone = origin.to_ascii();
    let target = secondary.address;
    let Some(signer) = transfers.keys().get(&secondary.key).cloned() else {
        tracing::warn!(%zone, %target, key = %secondary.key, "no TSIG key of that name in transfer.keys; NOTIFY not sent");
        return;
    };
    let local: SocketAddr =
        if target.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = match UdpSocket::bind(local).await {
        Ok(socket) if socket.connect(target).await.is_ok() => socket,
        _ => {
            tracing::warn!(%zone, %target, "cannot open a UDP socket towards the secondary; NOTIFY not sent");
            return;
        }
    };
    for (attempt, wait) in ATTEMPTS.iter().enumerate() {
        let mut request = Message::query();
        request.metadata.op_code = OpCode::Notify;
        request.metadata.authoritative = true;
        request.add_query(Query::query(origin.clone(), RecordType::SOA));
        // RFC 1996 §3.7: the new SOA may come along, so the secondary can skip its own check.
        request.add_answer(soa.clone());
        let sent = request.finalize(&signer, tsig::now()).ok().flatten().zip(request.to_vec().ok());
        let Some((mut verifier, bytes)) = sent else {
            tracing::error!(%zone, %target, "cannot sign a NOTIFY");
            return;
        };
        if socket.send(&bytes).await.is_err() {
            tracing::debug!(%zone, %target, attempt, "NOTIFY not sent");
        }
        transfers.metrics().notify_sent(&zone);
        let mut buf = vec![0u8; 4096];
        let answered = tokio::time::timeout(*wait, async {
            loop {
                let Ok(len) = socket.recv(&mut buf).await else { return None };
                let Ok(response) = Message::from_vec(&buf[..len]) else { continue };
                if response.metadata.id != request.metadata.id
                    || response.metadata.message_type != MessageType::Response
                {
                    continue;
                }
                let verified = verifier.verify(&buf[..len]).is_ok();
                return Some((response.metadata.response_code, verified));
            }
        })
        .await;
        match answered {
            Ok(Some((ResponseCode::NoError, true))) => {
                transfers.metrics().notify_acked(&zone);
                tracing::info!(%zone, %target, serial, "secondary acknowledged NOTIFY");
                return;
            }
            Ok(Some((rcode, verified))) => {
                // A refusal will not change by asking again.
                tracing::warn!(%zone, %target, %rcode, tsig_verified = verified, "secondary refused NOTIFY");
                return;
            }
            Ok(None) | Err(_) => tracing::debug!(%zone, %target, attempt, "no answer to NOTIFY"),
        }
    }
    tracing::warn!(%zone, %target, attempts = ATTEMPTS.len(), "secondary never answered NOTIFY");
}
