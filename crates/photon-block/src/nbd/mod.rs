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

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use exports::{Exports, StaticExports};
pub use proto::MAX_PAYLOAD;
pub use session::HANDSHAKE_TIMEOUT;
pub use transmission::MAX_IN_FLIGHT;

pub use crate::accept::SHUTDOWN_GRACE;

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
    let stop = shutdown.clone();
    crate::accept::serve("nbd", listener, shutdown, move |tcp, peer| {
        session::run(tcp, peer, exports.clone(), acceptor.clone(), stop.clone())
    })
    .await;
}
