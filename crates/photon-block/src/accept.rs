//! What every frontend's server does around its sessions: accept connections until shutdown,
//! each in its own owned task, then give the sessions a grace period to finish what is under
//! way before aborting the rest.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How long sessions get at shutdown to finish requests under way before they are aborted.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts on `listener` until `shutdown`, running `session(stream, peer)` for each connection;
/// returns once every session has ended. `protocol` names the server in logs.
pub async fn serve<S, F>(protocol: &'static str, listener: TcpListener, shutdown: CancellationToken, mut session: S)
where
    S: FnMut(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(ended) = sessions.join_next(), if !sessions.is_empty() => reap(protocol, ended),
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    sessions.spawn(session(tcp, peer));
                }
                Err(e) => {
                    // Usually out of file descriptors: pause instead of spinning.
                    tracing::warn!(error = %e, "{protocol}: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(ended) = sessions.join_next().await {
            reap(protocol, ended);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(sessions = sessions.len(), "{protocol}: sessions still running after the shutdown grace; aborting");
        sessions.shutdown().await;
    }
}

fn reap(protocol: &str, ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        if e.is_panic() {
            tracing::error!(error = %e, "{protocol}: a session task panicked");
        }
    }
}
