//! The iSCSI target (RFC 7143): serves each target a `Targets` names as one SCSI block
//! device, LUN 0 (SBC-3 and the SPC-4 commands initiators use), to libiscsi, QEMU and the
//! Linux initiator. Login negotiates CHAP (MD5) when the target has credentials, header and
//! data digests (CRC32C), and immediate and unsolicited data; sessions have one connection
//! and error recovery level 0.
//!
//! Code map: `pdu` frames PDUs; `text`, `params` and `chap` are login's pure parts and
//! `login` drives it; `ffp` is the full feature phase of a connection (commands, data
//! transfer, task management, the writer); `scsi` is the logical unit, which knows nothing of
//! iSCSI; `targets` is what the server serves; `session` drives one connection.

mod chap;
mod digest;
mod ffp;
mod login;
mod params;
mod pdu;
mod scsi;
mod session;
mod targets;
mod text;

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use ffp::{MEMORY_BUDGET, WINDOW};
pub use params::{FIRST_BURST, MAX_BURST, MAX_RECV_SEGMENT};
pub use session::LOGIN_TIMEOUT;
pub use targets::{Access, ChapCredentials, StaticTargets, Targets};

pub use crate::accept::SHUTDOWN_GRACE;

/// How the target tells a live initiator from a gone one (a host that died leaves its TCP
/// connection open, and with it its SPC-2 reservation): after `idle` with nothing heard, a
/// NOP-In ping (RFC 7143 §11.19) the initiator must answer within `answer`, or the connection
/// is closed.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    pub idle: std::time::Duration,
    pub answer: std::time::Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Self { idle: std::time::Duration::from_secs(10), answer: std::time::Duration::from_secs(10) }
    }
}

/// Serves iSCSI on `listener` until `shutdown` fires, each connection in its own task.
/// Persistent reservations live as long as this call, shared by all sessions to a target. At
/// shutdown, sessions stop reading, finish commands under way and close; any still running
/// after `SHUTDOWN_GRACE` are aborted. Returns once every session task has ended.
pub async fn serve(listener: TcpListener, targets: Arc<dyn Targets>, shutdown: CancellationToken) {
    serve_with(listener, targets, Liveness::default(), shutdown).await
}

/// `serve`, pinging quiet initiators as `liveness` says.
pub async fn serve_with(listener: TcpListener, targets: Arc<dyn Targets>, liveness: Liveness, shutdown: CancellationToken) {
    let registry = Arc::new(scsi::reservations::Registry::default());
    let tsih = AtomicU16::new(0);
    let stop = shutdown.clone();
    crate::accept::serve("iscsi", listener, shutdown, move |tcp, peer| {
        // TSIH 0 means "new session" on the wire, so it is never handed out.
        let handle = match tsih.fetch_add(1, Ordering::Relaxed).wrapping_add(1) {
            0 => tsih.fetch_add(1, Ordering::Relaxed).wrapping_add(1),
            h => h,
        };
        session::run(tcp, peer, targets.clone(), registry.clone(), handle, liveness, stop.clone())
    })
    .await;
}
