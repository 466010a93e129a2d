//! The full feature phase of one connection (RFC 7143 §4): a framer reads PDUs, the
//! connection core (`core`) handles them one at a time and runs each SCSI command as its own
//! task (up to the command window, within a memory budget), and one writer (`writer`) puts
//! target PDUs on the wire. Discovery sessions run the same core without a logical unit.
//!
//! Code map: `core` dispatches PDUs and task events; `command` takes SCSI commands in and
//! builds their Data-In and responses; `control` answers NOP-Out, Text, Logout and task
//! management; `transfer` follows one command's data-out; `writer` stamps and writes.

mod command;
mod control;
mod core;
mod transfer;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, BufReader, BufWriter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::params::SessionParams;
use super::pdu::{self, FrameError, Framing, Pdu};
use super::scsi::{LogicalUnit, Nexus};
use super::targets::Targets;
pub use writer::WINDOW;

/// Data-in and data-out bytes a connection's commands hold at once: two of the largest
/// transfers, so one large command never waits for another to drain the budget entirely.
pub const MEMORY_BUDGET: u32 = 2 * super::scsi::MAX_TRANSFER_BLOCKS * super::scsi::LOGICAL_BLOCK + (2 << 20);
/// Immediate commands (outside the window) a connection runs at once; more are rejected.
pub const MAX_IMMEDIATE: usize = 8;

/// What a logged-in session works with.
pub struct Session {
    pub params: SessionParams,
    /// LUN 0, or none for a discovery session.
    pub unit: Option<Arc<LogicalUnit>>,
    pub target: Option<String>,
    pub nexus: Nexus,
    pub targets: Arc<dyn Targets>,
    /// The address the initiator connected to, which SendTargets reports.
    pub portal: SocketAddr,
    pub exp_cmd_sn: u32,
    pub stat_sn: u32,
    /// When a quiet initiator is pinged, and how long it has to answer.
    pub liveness: super::Liveness,
}

/// How a connection ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Logout,
    /// The initiator closed the connection.
    Closed,
    Shutdown,
    /// The connection could no longer be written to.
    WriteFailed,
    /// The initiator answered no NOP-In ping in time (its host is gone, say).
    Unresponsive,
}

/// Why a connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("framing: {0}")]
    Frame(#[from] FrameError),
    /// The initiator broke a rule that leaves the session unrecoverable at error recovery
    /// level 0 (data out of step, a PDU where none may be).
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// Runs the full feature phase until logout, close, an error, or `shutdown`. Returns the
/// ending and the number of commands received.
pub async fn run<S>(stream: S, session: Session, shutdown: CancellationToken) -> (Result<Ending, ConnectionError>, u64)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let p = session.params;
    let framing = Framing { max_data: p.max_recv_segment, header_digest: p.header_digest, data_digest: p.data_digest };
    let digests = writer::Digests { header: p.header_digest, data: p.data_digest };
    let numbering = Arc::new(writer::Numbering::new(session.exp_cmd_sn));
    // Fires when the writer fails or the core ends, stopping the framer.
    let closing = shutdown.child_token();
    let (pdu_tx, pdu_rx) = mpsc::channel(4);
    let (out_tx, out_rx) = mpsc::channel(64);
    let writer = writer::write_pdus(
        BufWriter::with_capacity(64 * 1024, wr),
        out_rx,
        numbering.clone(),
        session.stat_sn,
        digests,
        closing.clone(),
    );
    let framer = read_pdus(BufReader::with_capacity(64 * 1024, rd), framing, pdu_tx, closing.clone());
    let stop = closing.clone();
    let core = async move {
        let mut core = core::Core::new(session, out_tx, numbering, closing.clone());
        let ending = core.run(pdu_rx).await;
        core.drain().await;
        let commands = core.commands;
        drop(core);
        stop.cancel();
        (ending, commands)
    };
    let ((ending, commands), (), written) = tokio::join!(core, framer, writer);
    let ending = match (ending, written) {
        (Ok(Ending::WriteFailed), Err(e)) => Err(ConnectionError::Frame(FrameError::Io(e))),
        (ending, _) => ending,
    };
    (ending, commands)
}

/// Reads PDUs into `tx` until the stream ends, fails, or `closing` fires.
async fn read_pdus<R: AsyncRead + Unpin>(
    mut rd: R,
    framing: Framing,
    tx: mpsc::Sender<Result<Pdu, FrameError>>,
    closing: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = closing.cancelled() => return,
            next = pdu::read_pdu(&mut rd, &framing) => next,
        };
        match next {
            Ok(Some(pdu)) => {
                if tx.send(Ok(pdu)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}
