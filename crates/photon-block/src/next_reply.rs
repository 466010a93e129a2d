//! How a connection's one writer takes its next reply: at once if one is waiting, else after
//! flushing its buffer, so pipelined replies share segments and a lone one is never held back.

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

/// The next reply from `rx`, flushing `wr` first when none is waiting; `None` once every
/// sender is gone.
pub async fn next_reply<T, W: AsyncWrite + Unpin>(rx: &mut mpsc::Receiver<T>, wr: &mut BufWriter<W>) -> std::io::Result<Option<T>> {
    match rx.try_recv() {
        Ok(out) => Ok(Some(out)),
        Err(TryRecvError::Empty) => {
            wr.flush().await?;
            Ok(rx.recv().await)
        }
        Err(TryRecvError::Disconnected) => Ok(None),
    }
}
