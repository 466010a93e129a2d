//! The NBD server (fixed newstyle, per the upstream `doc/proto.md`): serves the devices an
//! `Exports` names to QEMU, libnbd and the kernel client, optionally requiring TLS.
//!
//! Code map: `proto` wire constants and encoders; `options` and `request` parse what clients
//! send and decide (pure); `handshake` haggles options; `transmission` runs the request loop;
//! `execute` runs one command on the device; `session` drives a connection; `exports` is what
//! the server serves.

mod error;
mod execute;
mod exports;
mod handshake;
mod options;
mod proto;
mod request;
mod session;
mod transmission;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use exports::{Exports, StaticExports};
pub use proto::MAX_PAYLOAD;
pub use session::HANDSHAKE_TIMEOUT;
pub use transmission::MAX_IN_FLIGHT;

/// How long sessions get at shutdown to finish in-flight requests before they are aborted.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves NBD on `listener` until `shutdown` fires, each connection in its own task. With
/// `tls`, clients must upgrade with NBD_OPT_STARTTLS before anything else. At shutdown,
/// sessions stop reading requests, answer those in flight and close; any still running after
/// `SHUTDOWN_GRACE` are aborted. Returns once every session task has ended.
pub async fn serve(
    listener: TcpListener,
    exports: Arc<dyn Exports>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(ended) = sessions.join_next(), if !sessions.is_empty() => reap(ended),
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    sessions.spawn(session::run(tcp, peer, exports.clone(), acceptor.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Usually out of file descriptors: pause instead of spinning.
                    tracing::warn!(error = %e, "nbd: accept failed");
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
        tracing::warn!(sessions = sessions.len(), "nbd: sessions still running after the shutdown grace; aborting");
        sessions.shutdown().await;
    }
}

fn reap(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        if e.is_panic() {
            tracing::error!(error = %e, "nbd: a session task panicked");
        }
    }
}
