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
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use ffp::{MEMORY_BUDGET, WINDOW};
pub use params::{FIRST_BURST, MAX_BURST, MAX_RECV_SEGMENT};
pub use session::LOGIN_TIMEOUT;
pub use targets::{Access, ChapCredentials, StaticTargets, Targets};

/// How long sessions get at shutdown to finish commands under way before they are aborted.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves iSCSI on `listener` until `shutdown` fires, each connection in its own task.
/// Persistent reservations live as long as this call, shared by all sessions to a target. At
/// shutdown, sessions stop reading, finish commands under way and close; any still running
/// after `SHUTDOWN_GRACE` are aborted. Returns once every session task has ended.
pub async fn serve(listener: TcpListener, targets: Arc<dyn Targets>, shutdown: CancellationToken) {
    let registry = Arc::new(scsi::reservations::Registry::default());
    let tsih = AtomicU16::new(0);
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(ended) = sessions.join_next(), if !sessions.is_empty() => reap(ended),
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    // TSIH 0 means "new session" on the wire, so it is never handed out.
                    let handle = match tsih.fetch_add(1, Ordering::Relaxed).wrapping_add(1) {
                        0 => tsih.fetch_add(1, Ordering::Relaxed).wrapping_add(1),
                        h => h,
                    };
                    sessions.spawn(session::run(tcp, peer, targets.clone(), registry.clone(), handle, shutdown.clone()));
                }
                Err(e) => {
                    // Usually out of file descriptors: pause instead of spinning.
                    tracing::warn!(error = %e, "iscsi: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(ended) = sessions.join_next().await {
            reap(ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(sessions = sessions.len(), "iscsi: sessions still running after the shutdown grace; aborting");
        sessions.shutdown().await;
    }
}

fn reap(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        if e.is_panic() {
            tracing::error!(error = %e, "iscsi: a session task panicked");
        }
    }
}
