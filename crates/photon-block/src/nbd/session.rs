//! One client connection from greeting to close: the fixed-newstyle greeting, option haggling
//! (upgraded to TLS on STARTTLS), then transmission; logs one line when an export is opened and
//! one when the session closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::error::SessionError;
use super::exports::Exports;
use super::handshake::{haggle, Negotiated, Outcome, TlsMode};
use super::proto::*;
use super::transmission::{self, Ending};

/// How long a client has from connecting to entering transmission (TLS included), so idle or
/// trickling connections do not hold a task forever. Real clients need milliseconds.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection once negotiation is over.
enum Ready {
    Plain(TcpStream, Negotiated),
    Tls(Box<TlsStream<TcpStream>>, Negotiated),
    /// The client aborted (or the server is shutting down) before choosing an export.
    Closed,
}

pub async fn run(
    tcp: TcpStream,
    peer: SocketAddr,
    exports: Arc<dyn Exports>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    // Replies are written whole; Nagle would only delay the last segment of each.
    let _ = tcp.set_nodelay(true);
    let negotiation = tokio::select! {
        _ = shutdown.cancelled() => Ok(Ready::Closed),
        r = tokio::time::timeout(HANDSHAKE_TIMEOUT, negotiate(tcp, &*exports, tls)) => {
            r.unwrap_or(Err(SessionError::HandshakeTimeout(HANDSHAKE_TIMEOUT)))
        }
    };
    let (name, tls, result) = match negotiation {
        Ok(Ready::Closed) => {
            tracing::debug!(%peer, "nbd: client left during negotiation");
            return;
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "nbd: negotiation failed");
            return;
        }
        Ok(Ready::Plain(stream, n)) => (n.name.clone(), false, transmit(stream, n, peer, false, shutdown).await),
        Ok(Ready::Tls(stream, n)) => (n.name.clone(), true, transmit(*stream, n, peer, true, shutdown).await),
    };
    match result {
        (Ok(ending), requests) => {
            tracing::info!(export = %name, %peer, tls, requests, ?ending, "nbd session closed")
        }
        (Err(e), requests) => {
            tracing::warn!(export = %name, %peer, tls, requests, error = %e, "nbd session closed on an error")
        }
    }
}

async fn transmit<S>(
    stream: S,
    n: Negotiated,
    peer: SocketAddr,
    tls: bool,
    shutdown: CancellationToken,
) -> (Result<Ending, SessionError>, u64)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    tracing::info!(
        export = %n.name, %peer, tls, size = n.rules.size, read_only = n.rules.read_only,
        structured = n.rules.structured, "nbd session opened"
    );
    transmission::run(stream, n, shutdown).await
}

async fn negotiate(mut tcp: TcpStream, exports: &dyn Exports, tls: Option<TlsAcceptor>) -> Result<Ready, SessionError> {
    tcp.write_all(&greeting()).await?;
    let flags = tcp.read_u32().await?;
    // Only fixed newstyle is spoken (TLS and every option but EXPORT_NAME need it).
    if flags & FLAG_C_FIXED_NEWSTYLE == 0 {
        return Err(SessionError::protocol("the client does not speak fixed newstyle"));
    }
    if flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(SessionError::protocol(format!("unknown client flags {flags:#x}")));
    }
    let no_zeroes = flags & FLAG_C_NO_ZEROES != 0;
    let mode = if tls.is_some() { TlsMode::Required } else { TlsMode::Off };
    match haggle(&mut tcp, exports, mode, no_zeroes).await? {
        Outcome::Transmit(n) => Ok(Ready::Plain(tcp, n)),
        Outcome::Abort => {
            let _ = tcp.shutdown().await;
            Ok(Ready::Closed)
        }
        Outcome::StartTls => {
            let Some(acceptor) = tls else {
                return Err(SessionError::protocol("STARTTLS accepted without TLS configured"));
            };
            let mut stream = acceptor.accept(tcp).await.map_err(SessionError::Tls)?;
            match haggle(&mut stream, exports, TlsMode::Active, no_zeroes).await? {
                Outcome::Transmit(n) => Ok(Ready::Tls(Box::new(stream), n)),
                Outcome::Abort => {
                    let _ = stream.shutdown().await;
                    Ok(Ready::Closed)
                }
                Outcome::StartTls => Err(SessionError::protocol("STARTTLS accepted twice")),
            }
        }
    }
}
