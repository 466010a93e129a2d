//! Other protocols on the API port, chosen by TLS ALPN: a service may hand the runtime a
//! handler for connections that negotiate its protocol (FlashDNS serves DNS over TLS, ALPN
//! `dot`, beside its API). HTTP and gRPC stay the runtime's; a protocol may also claim the
//! connections that offer no ALPN at all (RFC 7858 clients often do not).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Handler = Arc<dyn Fn(TlsStream<TcpStream>, SocketAddr, CancellationToken) -> BoxFuture + Send + Sync>;

/// One protocol served on the API port beside HTTP.
#[derive(Clone)]
pub struct StreamProtocol {
    pub(crate) alpn: Vec<u8>,
    pub(crate) without_alpn: bool,
    pub(crate) handler: Handler,
}

impl StreamProtocol {
    /// Connections negotiating `alpn` go to `handler` (with the shutdown token, which the
    /// handler must watch to end the connection when the server drains).
    pub fn new<F, Fut>(alpn: &[u8], handler: F) -> Self
    where
        F: Fn(TlsStream<TcpStream>, SocketAddr, CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |stream, peer, shutdown| Box::pin(handler(stream, peer, shutdown)));
        Self { alpn: alpn.to_vec(), without_alpn: false, handler }
    }

    /// Also take connections that negotiated no ALPN protocol (HTTP clients always offer one).
    pub fn also_without_alpn(mut self) -> Self {
        self.without_alpn = true;
        self
    }
}

/// The protocols of a port, looked up after each handshake.
#[derive(Clone, Default)]
pub(crate) struct Streams(pub(crate) Arc<Vec<StreamProtocol>>);

impl Streams {
    /// The protocol a connection that negotiated `alpn` belongs to, if not HTTP's.
    pub(crate) fn for_alpn(&self, alpn: Option<&[u8]>) -> Option<&StreamProtocol> {
        match alpn {
            Some(alpn) => self.0.iter().find(|p| p.alpn == alpn),
            None => self.0.iter().find(|p| p.without_alpn),
        }
    }

    /// `tls` offering these protocols after HTTP's own.
    pub(crate) fn offer(&self, tls: Option<Arc<rustls::ServerConfig>>) -> Option<Arc<rustls::ServerConfig>> {
        let tls = tls?;
        if self.0.is_empty() {
            return Some(tls);
        }
        let mut config = (*tls).clone();
        for protocol in self.0.iter() {
            config.alpn_protocols.push(protocol.alpn.clone());
        }
        Some(Arc::new(config))
    }
}
