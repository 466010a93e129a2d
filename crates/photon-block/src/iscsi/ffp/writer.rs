//! The one writer of a connection, and the command window it advertises. Every target PDU
//! passes through here to be stamped: StatSN in the order PDUs go on the wire, ExpCmdSN and
//! MaxCmdSN as they are at that moment (RFC 7143 §4.2.2). The window is `WINDOW` commands
//! minus those received and not yet answered, so MaxCmdSN only moves forward.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::iscsi::digest::Crc32c;
use crate::iscsi::pdu::{self, Outgoing, StatSn};

/// Non-immediate commands a session accepts at once.
pub const WINDOW: u32 = 32;

#[derive(Debug)]
struct Counters {
    exp_cmd_sn: u32,
    in_flight: u32,
}

/// CmdSN accounting shared by the connection (which accepts commands) and the writer (which
/// answers them).
#[derive(Debug)]
pub struct Numbering {
    counters: Mutex<Counters>,
}

impl Numbering {
    pub fn new(exp_cmd_sn: u32) -> Self {
        Self { counters: Mutex::new(Counters { exp_cmd_sn, in_flight: 0 }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a non-immediate command numbered `cmd_sn` is inside the window
    /// [ExpCmdSN, MaxCmdSN] (serial arithmetic).
    pub fn in_window(&self, cmd_sn: u32) -> bool {
        let c = self.lock();
        cmd_sn.wrapping_sub(c.exp_cmd_sn) < WINDOW.saturating_sub(c.in_flight)
    }

    /// Takes a non-immediate command into the window. A command skipping numbers moves
    /// ExpCmdSN past the gap: with one connection per session nothing can fill it later.
    pub fn accept(&self, cmd_sn: u32) {
        let mut c = self.lock();
        c.exp_cmd_sn = cmd_sn.wrapping_add(1);
        c.in_flight += 1;
    }

    /// A non-immediate command has been answered (or ended unanswered).
    pub fn release(&self) {
        let mut c = self.lock();
        c.in_flight = c.in_flight.saturating_sub(1);
    }

    /// (ExpCmdSN, MaxCmdSN) now.
    pub fn window(&self) -> (u32, u32) {
        let c = self.lock();
        let open = WINDOW.saturating_sub(c.in_flight);
        (c.exp_cmd_sn, c.exp_cmd_sn.wrapping_add(open).wrapping_sub(1))
    }
}

/// How the connection was framed after login.
#[derive(Debug, Clone, Copy)]
pub struct Digests {
    pub header: bool,
    pub data: bool,
}

/// Writes PDUs in the order they arrive, flushing when none are waiting so pipelined replies
/// share segments. On an error, cancels `closing` so the rest of the connection stops.
pub async fn write_pdus<W>(
    mut wr: BufWriter<W>,
    mut rx: mpsc::Receiver<Outgoing>,
    numbering: Arc<Numbering>,
    mut stat_sn: u32,
    digests: Digests,
    closing: CancellationToken,
) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let result = async {
        loop {
            let mut out = match crate::next_reply::next_reply(&mut rx, &mut wr).await? {
                Some(out) => out,
                None => break,
            };
            if out.releases_slot {
                numbering.release();
            }
            stamp(&mut out, &mut stat_sn, &numbering);
            write_one(&mut wr, &out, digests).await?;
        }
        wr.flush().await?;
        wr.shutdown().await
    }
    .await;
    if result.is_err() {
        rx.close();
        closing.cancel();
    }
    result
}

fn stamp(out: &mut Outgoing, stat_sn: &mut u32, numbering: &Numbering) {
    pdu::put_data_len(&mut out.bhs, out.data.len());
    match out.stat {
        StatSn::Advance => {
            pdu::put_u32(&mut out.bhs, 24, *stat_sn);
            *stat_sn = stat_sn.wrapping_add(1);
        }
        StatSn::Current => pdu::put_u32(&mut out.bhs, 24, *stat_sn),
        StatSn::Absent => {}
    }
    let (exp, max) = numbering.window();
    pdu::put_u32(&mut out.bhs, 28, exp);
    pdu::put_u32(&mut out.bhs, 32, max);
}

async fn write_one<W: AsyncWrite + Unpin>(
    wr: &mut BufWriter<W>,
    out: &Outgoing,
    digests: Digests,
) -> std::io::Result<()> {
    wr.write_all(&out.bhs).await?;
    if digests.header {
        wr.write_all(&Crc32c::new().update(&out.bhs).bytes()).await?;
    }
    if out.data.is_empty() {
        return Ok(());
    }
    wr.write_all(&out.data).await?;
    let pad = &[0u8; 3][..pdu::padded(out.data.len()) - out.data.len()];
    wr.write_all(pad).await?;
    if digests.data {
        wr.write_all(&Crc32c::new().update(&out.data).update(pad).bytes()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_shrinks_with_commands_in_flight_and_never_moves_back() {
        let n = Numbering::new(100);
        assert_eq!(n.window(), (100, 131));
        assert!(n.in_window(100) && n.in_window(131) && !n.in_window(132) && !n.in_window(99));
        n.accept(100);
        assert_eq!(n.window(), (101, 131));
        n.accept(105);
        assert_eq!(n.window(), (106, 135), "a gap moves the whole window on");
        n.release();
        n.release();
        assert_eq!(n.window(), (106, 137));
        for sn in 106..138 {
            n.accept(sn);
        }
        assert_eq!(n.window(), (138, 137), "a closed window is MaxCmdSN = ExpCmdSN - 1");
        assert!(!n.in_window(138));
    }

    #[test]
    fn the_window_wraps() {
        let n = Numbering::new(u32::MAX - 1);
        assert!(n.in_window(u32::MAX) && n.in_window(0) && n.in_window(29));
        assert!(!n.in_window(30));
        assert_eq!(n.window(), (u32::MAX - 1, 29));
    }
}
