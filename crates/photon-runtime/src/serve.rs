//! The accept loop of the API port: TLS (or plaintext) then HTTP/1.1 or HTTP/2 chosen per
//! connection, one router for gRPC and HTTP, and a bounded graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::streams::Streams;

/// A client that opens a connection and never finishes the TLS handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown`, then lets in-flight requests finish for up to
/// `drain` before closing what is left. Every connection task is owned and reaped here.
pub async fn serve_connections(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    shutdown: CancellationToken,
    drain: Duration,
) {
    serve_with_streams(listener, tls, app, Streams::default(), shutdown, drain).await
}

/// [`serve_connections`], with connections of other ALPN protocols handed to their handlers.
pub(crate) async fn serve_with_streams(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    streams: Streams,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let acceptor = streams.offer(tls).map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let link = Link { streams: streams.clone(), shutdown: shutdown.clone() };
                    connections.spawn(serve_one(tcp, peer, acceptor.clone(), app.clone(), graceful.watcher(), link));
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning; the listener stays usable.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!(connections = graceful.count(), deadline_secs = drain.as_secs(), "stopped accepting; draining");
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("drain deadline passed; closing the remaining connections");
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
}

/// What a connection task needs besides the HTTP app: the port's other protocols.
struct Link {
    streams: Streams,
    shutdown: CancellationToken,
}

async fn serve_one(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    watcher: Watcher,
    link: Link,
) {
    let _ = tcp.set_nodelay(true);
    let service = TowerToHyperService::new(app);
    let builder = auto::Builder::new(TokioExecutor::new());
    let result = match tls {
        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => {
                if let Some(protocol) = link.streams.for_alpn(stream.get_ref().1.alpn_protocol()) {
                    (protocol.handler)(stream, peer, link.shutdown).await;
                    return;
                }
                watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service)).await
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        None => watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(tcp), service)).await,
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
