//! The transmission phase: one reader takes requests off the wire, each checked request runs
//! as its own task (up to `MAX_IN_FLIGHT` at once, within a payload budget), and one writer
//! puts replies on the wire whole, in completion order, so two replies never interleave.
//!
//! A flush needs no barrier: the device's flush covers every write that returned before it was
//! called, and a write the client saw answered returned before the flush request was read.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::error::SessionError;
use super::execute::{execute, refusal, Reply};
use super::handshake::Negotiated;
use super::proto::*;
use super::request::{check, RequestHeader};

/// Requests processed at once per connection; more wait in the socket (TCP backpressure).
pub const MAX_IN_FLIGHT: usize = 32;
/// Read and write payload bytes held at once per connection: two maximum-size requests, or
/// many small ones, so a connection's memory stays bounded whatever the client pipelines.
pub const PAYLOAD_BUDGET: u32 = 2 * MAX_PAYLOAD;

/// How transmission ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client sent NBD_CMD_DISC.
    Disconnect,
    /// The client closed the connection between requests.
    Closed,
    /// The server is shutting down.
    Shutdown,
    /// The connection could no longer be written to.
    WriteFailed,
}

/// What reading one request led to.
enum Next {
    Continue,
    Disconnect,
    /// The client closed the connection between requests.
    Closed,
}

/// A reply on its way to the writer, holding the permits of its request until it is written.
struct Outgoing {
    reply: Reply,
    _permits: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
}

/// Runs transmission until the client disconnects, breaks the protocol, or `shutdown` fires;
/// in-flight requests are finished and answered first. Returns the ending and the number of
/// requests served.
pub async fn run<S>(stream: S, session: Negotiated, shutdown: CancellationToken) -> (Result<Ending, SessionError>, u64)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
    // Fires when the writer fails, so the reader stops too.
    let closing = shutdown.child_token();
    let writer = write_replies(BufWriter::with_capacity(64 * 1024, wr), rx, closing.clone());
    let mut reader = Reader {
        rd: BufReader::with_capacity(64 * 1024, rd),
        session,
        tx,
        slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        budget: Arc::new(Semaphore::new(PAYLOAD_BUDGET as usize)),
        tasks: JoinSet::new(),
        requests: 0,
    };
    let reading = async move {
        let ending = reader.read_requests(&closing).await;
        // Finish what was started, then close the channel so the writer drains and ends.
        while reader.tasks.join_next().await.is_some() {}
        drop(reader.tx);
        (ending, reader.requests)
    };
    let ((ending, requests), written) = tokio::join!(reading, writer);
    let ending = match (ending, written) {
        (Err(e), _) => Err(e),
        (Ok(Ending::WriteFailed), Err(e)) => Err(SessionError::Io(e)),
        (Ok(ending), _) => Ok(ending),
    };
    (ending, requests)
}

struct Reader<R> {
    rd: BufReader<R>,
    session: Negotiated,
    tx: mpsc::Sender<Outgoing>,
    slots: Arc<Semaphore>,
    budget: Arc<Semaphore>,
    tasks: JoinSet<()>,
    requests: u64,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    async fn read_requests(&mut self, closing: &CancellationToken) -> Result<Ending, SessionError> {
        loop {
            // Reap finished tasks so the set does not grow with the session.
            while self.tasks.try_join_next().is_some() {}
            let next = tokio::select! {
                biased;
                _ = closing.cancelled() => None,
                next = self.next_request() => Some(next),
            };
            match next {
                None if self.tx.is_closed() => return Ok(Ending::WriteFailed),
                None => return Ok(Ending::Shutdown),
                Some(Err(e)) => return Err(e),
                Some(Ok(Next::Closed)) => return Ok(Ending::Closed),
                Some(Ok(Next::Disconnect)) => return Ok(Ending::Disconnect),
                Some(Ok(Next::Continue)) => {}
            }
        }
    }

    /// Reads one request and starts it, or queues its refusal.
    async fn next_request(&mut self) -> Result<Next, SessionError> {
        let slot = self.slots.clone().acquire_owned().await.map_err(|_| closed())?;
        let mut raw = [0u8; REQUEST_HEADER_LEN];
        match self.rd.read_exact(&mut raw).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Next::Closed),
            Err(e) => return Err(e.into()),
        }
        let header = RequestHeader::parse(&raw).map_err(|e| SessionError::protocol(e.to_string()))?;
        self.requests += 1;
        tracing::trace!(?header, "request");
        if header.kind == CMD_DISC {
            // Never answered, so bad flags or fields on it have nobody to be told to.
            return Ok(Next::Disconnect);
        }
        let rules = self.session.rules;
        let payload_len = match header.kind {
            CMD_WRITE if header.len > MAX_PAYLOAD => {
                // Reading it would hold too much; skipping it could take forever. Hang up.
                return Err(SessionError::protocol(format!("a write of {} bytes exceeds the maximum", header.len)));
            }
            CMD_WRITE | CMD_READ if header.len <= MAX_PAYLOAD => header.len,
            _ => 0,
        };
        let bytes = if payload_len > 0 {
            Some(self.budget.clone().acquire_many_owned(payload_len).await.map_err(|_| closed())?)
        } else {
            None
        };
        let payload = if header.kind == CMD_WRITE { self.read_payload(header.len).await? } else { Bytes::new() };
        let cmd = match check(&header, &rules) {
            Ok(cmd) => cmd,
            Err(r) => {
                let reply = refusal(header.cookie, rules.structured, r);
                // A closed channel means the connection is going away; nobody reads the reply.
                let _ = self.tx.send(Outgoing { reply, _permits: (slot, bytes) }).await;
                return Ok(Next::Continue);
            }
        };
        let device = self.session.device.clone();
        let tx = self.tx.clone();
        self.tasks.spawn(async move {
            let reply = execute(&*device, header.cookie, cmd, payload, rules.structured).await;
            let _ = tx.send(Outgoing { reply, _permits: (slot, bytes) }).await;
        });
        Ok(Next::Continue)
    }

    async fn read_payload(&mut self, len: u32) -> Result<Bytes, SessionError> {
        let mut buf = BytesMut::with_capacity(len as usize);
        while buf.len() < len as usize {
            let want = (len as usize - buf.len()) as u64;
            if (&mut self.rd).take(want).read_buf(&mut buf).await? == 0 {
                return Err(SessionError::protocol(format!(
                    "the connection closed inside a write's payload ({} of {len} bytes)",
                    buf.len()
                )));
            }
        }
        Ok(buf.freeze())
    }
}

fn closed() -> SessionError {
    SessionError::protocol("the request limiter closed")
}

/// Writes replies whole, one after another; flushes when no more are ready, so pipelined small
/// replies share packets. On an error, cancels `closing` so the reader stops.
async fn write_replies<W>(
    mut wr: BufWriter<W>,
    mut rx: mpsc::Receiver<Outgoing>,
    closing: CancellationToken,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let result = async {
        loop {
            let out = match crate::next_reply::next_reply(&mut rx, &mut wr).await? {
                Some(out) => out,
                None => break,
            };
            wr.write_all(&out.reply.head).await?;
            if let Some(data) = &out.reply.data {
                wr.write_all(data).await?;
            }
        }
        wr.flush().await?;
        // Ends TLS with close_notify, then TCP with FIN.
        wr.shutdown().await
    }
    .await;
    if result.is_err() {
        rx.close();
        closing.cancel();
    }
    result
}
