//! DNS over TCP and over TLS: each message is preceded by its two-byte length; a client may
//! send several queries on one connection (RFC 7766), answered in order (a zone transfer by
//! several messages). Idle connections are closed, and a half-sent query may not hold a
//! connection open for ever.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Answerer;

/// A connection with no query for this long is closed (RFC 7766 §6.2.3 suggests seconds).
const IDLE: Duration = Duration::from_secs(10);
/// A query's bytes must all arrive within this once its length has.
const READ_QUERY: Duration = Duration::from_secs(5);

/// Accepts TCP connections on `listener` until `shutdown`, each served on its own task.
pub fn serve_tcp(listener: TcpListener, answerer: Answerer, shutdown: CancellationToken, tasks: &TaskTracker) {
    let tracker = tasks.clone();
    tasks.spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "TCP accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            tracker.spawn(serve_connection(tcp, peer, answerer.clone(), shutdown.clone()));
        }
    });
}

/// Answers the queries of one connection (plain TCP or TLS) until it closes, idles or errs.
pub async fn serve_connection<S>(mut stream: S, peer: SocketAddr, answerer: Answerer, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut view = answerer.view();
    loop {
        let mut len = [0u8; 2];
        let read = tokio::select! {
            _ = shutdown.cancelled() => return,
            read = tokio::time::timeout(IDLE, stream.read_exact(&mut len)) => read,
        };
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        let len = u16::from_be_bytes(len) as usize;
        buf.resize(len, 0);
        match tokio::time::timeout(READ_QUERY, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => {
                tracing::debug!(%peer, "DNS stream closed inside a query");
                return;
            }
        }
        // One response, or a zone transfer's several (RFC 5936 §2.2).
        let responses = answerer.answer_stream(&mut view, &buf, peer);
        if responses.is_empty() {
            return;
        }
        for response in responses {
            let Ok(response_len) = u16::try_from(response.len()) else { return };
            let mut framed = Vec::with_capacity(response.len() + 2);
            framed.extend_from_slice(&response_len.to_be_bytes());
            framed.extend_from_slice(&response);
            if stream.write_all(&framed).await.is_err() {
                return;
            }
        }
        if stream.flush().await.is_err() {
            return;
        }
    }
}
