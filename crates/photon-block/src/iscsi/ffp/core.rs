//! The connection core: one loop owning the session's state (tasks by initiator task tag,
//! transfers, pending task management), fed by the framer's PDUs and the command tasks'
//! events, sending every target PDU to the writer. Nothing here waits on the device, so a
//! slow command never stops the core from reading Data-Out or answering NOP-Outs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::transfer::{Next, Transfer};
use super::writer::Numbering;
use super::{ConnectionError, Ending, Session, MEMORY_BUDGET};
use crate::iscsi::pdu::{self, Bhs, FrameError, Outgoing, Pdu, StatSn, FLAG_FINAL, RESERVED_TAG};
use crate::iscsi::scsi::sense::Sense;
use crate::iscsi::scsi::Outcome;

/// A SCSI task the connection knows about, from its command PDU until its response is sent.
pub(super) struct Task {
    pub lun: [u8; 8],
    /// Immediate commands hold no CmdSN slot.
    pub immediate: bool,
    /// The expected data transfer length, by direction (from the R and W bits).
    pub edtl_in: u32,
    pub edtl_out: u32,
    /// The data-out bytes the CDB asks for (for residuals).
    pub out_needed: u32,
    pub transfer: Option<Transfer>,
    /// The command task waiting for its data-out.
    pub waiter: Option<oneshot::Sender<Bytes>>,
    /// The response, held until the last unsolicited Data-Out arrives.
    pub parked: Vec<Outgoing>,
    pub cancel: CancellationToken,
    /// A command task is running and will send `Event::Done`.
    pub running: bool,
    pub aborted: bool,
    /// Data-In PDUs sent (for ExpDataSN).
    pub data_in: u32,
}

/// What command tasks tell the core.
pub(super) enum Event {
    WantData {
        itt: u32,
        reply: oneshot::Sender<Bytes>,
    },
    /// The task ended: with an outcome, or none when it ended without running (aborted, its
    /// data-out failed, or the connection is closing).
    Done {
        itt: u32,
        outcome: Option<Outcome>,
        hold: Option<OwnedSemaphorePermit>,
    },
}

/// A task management request answered once the tasks it ends have ended.
pub(super) struct PendingTmf {
    pub bhs: Bhs,
    pub waiting: Vec<u32>,
}

/// A Text response too long for one PDU, sent in parts as the initiator asks.
pub(super) struct PendingText {
    pub ttt: u32,
    pub rest: Bytes,
}

/// The core ends the loop with this.
pub(super) type Step = Result<Option<Ending>, ConnectionError>;

pub(super) struct Core {
    pub s: Session,
    out: mpsc::Sender<Outgoing>,
    pub numbering: Arc<Numbering>,
    pub tasks: HashMap<u32, Task>,
    pub events: mpsc::Sender<Event>,
    events_rx: mpsc::Receiver<Event>,
    pub running: JoinSet<()>,
    pub budget: Arc<Semaphore>,
    next_ttt: u32,
    pub tmfs: Vec<PendingTmf>,
    pub text: Option<PendingText>,
    pub text_joiner: crate::iscsi::text::Joiner,
    pub closing: CancellationToken,
    /// Commands received, for the closing log line.
    pub commands: u64,
    /// The writer is gone; nothing more can be sent.
    pub write_failed: bool,
    /// The connection is ending: no task starts a data transfer any more.
    draining: bool,
    /// When the initiator last sent anything.
    heard: Instant,
    /// The NOP-In ping awaiting an answer: its target transfer tag and when it went.
    ping: Option<(u32, Instant)>,
}

impl Core {
    pub fn new(s: Session, out: mpsc::Sender<Outgoing>, numbering: Arc<Numbering>, closing: CancellationToken) -> Self {
        let (events, events_rx) = mpsc::channel(64);
        Core {
            s,
            out,
            numbering,
            tasks: HashMap::new(),
            events,
            events_rx,
            running: JoinSet::new(),
            budget: Arc::new(Semaphore::new(MEMORY_BUDGET as usize)),
            next_ttt: 1,
            tmfs: Vec::new(),
            text: None,
            text_joiner: Default::default(),
            closing,
            commands: 0,
            write_failed: false,
            draining: false,
            heard: Instant::now(),
            ping: None,
        }
    }

    /// When the initiator has been quiet too long: time to ping it, or to give up on it.
    fn quiet_until(&self) -> Instant {
        match self.ping {
            Some((_, sent)) => sent + self.s.liveness.answer,
            None => self.heard + self.s.liveness.idle,
        }
    }

    /// The initiator has been quiet: pinged (a NOP-In it must answer, RFC 7143 §11.19), or,
    /// if it did not answer the last ping in time, let go.
    async fn on_quiet(&mut self) -> Step {
        if let Some((ttt, _)) = self.ping {
            tracing::info!(initiator = %self.s.nexus.port, ttt, "iscsi: the initiator answered no NOP-In in time; closing its connection");
            return Ok(Some(Ending::Unresponsive));
        }
        let ttt = self.new_ttt();
        let mut h = pdu::header(pdu::OP_NOP_IN, FLAG_FINAL);
        pdu::put_u32(&mut h, 16, RESERVED_TAG);
        pdu::put_u32(&mut h, 20, ttt);
        self.send(Outgoing::new(h, Bytes::new(), StatSn::Current)).await;
        self.ping = Some((ttt, Instant::now()));
        Ok(None)
    }

    pub async fn run(&mut self, mut pdus: mpsc::Receiver<Result<Pdu, FrameError>>) -> Result<Ending, ConnectionError> {
        loop {
            while self.running.try_join_next().is_some() {}
            if self.write_failed {
                return Ok(Ending::WriteFailed);
            }
            let quiet = tokio::time::sleep_until(self.quiet_until().into());
            let step = tokio::select! {
                biased;
                _ = self.closing.cancelled() => {
                    return Ok(if self.out.is_closed() { Ending::WriteFailed } else { Ending::Shutdown });
                }
                Some(event) = self.events_rx.recv() => {
                    self.on_event(event).await;
                    Ok(None)
                }
                pdu = pdus.recv() => match pdu {
                    None => return Ok(Ending::Closed),
                    Some(Err(e)) => return Err(e.into()),
                    Some(Ok(pdu)) => {
                        // Anything it sends shows the initiator is there (the ping's answer too).
                        self.heard = Instant::now();
                        self.ping = None;
                        self.on_pdu(pdu).await
                    }
                },
                _ = quiet => self.on_quiet().await,
            };
            if let Some(ending) = step? {
                return Ok(ending);
            }
            if !self.tmfs.is_empty() {
                self.tmf_progress().await?;
            }
        }
    }

    async fn on_pdu(&mut self, pdu: Pdu) -> Step {
        let b = pdu.bhs;
        tracing::trace!(bhs = ?b, data = pdu.data.len(), "iscsi: pdu");
        // Initiator PDUs carrying a CmdSN: outside the window they are silently ignored
        // (§4.2.2.1); SCSI commands check it themselves, after their own checks.
        let numbered = matches!(b.opcode(), pdu::OP_NOP_OUT | pdu::OP_TEXT_REQ | pdu::OP_LOGOUT_REQ | pdu::OP_TMF_REQ);
        if numbered && !b.immediate() {
            let cmd_sn = b.u32(24);
            if !self.numbering.in_window(cmd_sn) {
                tracing::debug!(bhs = ?b, cmd_sn, "iscsi: PDU outside the command window ignored");
                return Ok(None);
            }
            self.numbering.accept(cmd_sn);
        }
        match b.opcode() {
            pdu::OP_SCSI_CMD => self.on_command(pdu).await,
            pdu::OP_DATA_OUT => self.on_data_out(pdu).await,
            pdu::OP_NOP_OUT => self.on_nop_out(pdu).await,
            pdu::OP_TEXT_REQ => self.on_text(pdu).await,
            pdu::OP_LOGOUT_REQ => self.on_logout(pdu).await,
            pdu::OP_TMF_REQ => self.on_tmf(pdu).await,
            pdu::OP_SNACK | pdu::OP_LOGIN_REQ => self.reject(pdu::REJECT_PROTOCOL_ERROR, &b).await,
            _ => self.reject(pdu::REJECT_COMMAND_NOT_SUPPORTED, &b).await,
        }
    }

    /// Sends a PDU to the writer; a gone writer ends the connection at the next turn.
    pub async fn send(&mut self, out: Outgoing) {
        if self.out.send(out).await.is_err() {
            self.write_failed = true;
        }
    }

    pub async fn reject(&mut self, reason: u8, bhs: &Bhs) -> Step {
        tracing::debug!(?bhs, reason, "iscsi: rejecting a PDU");
        // A rejected numbered PDU was taken into the window; its answer frees the slot.
        let numbered = !bhs.immediate()
            && matches!(bhs.opcode(), pdu::OP_NOP_OUT | pdu::OP_TEXT_REQ | pdu::OP_LOGOUT_REQ | pdu::OP_TMF_REQ);
        self.send(pdu::reject(reason, bhs).releasing(numbered)).await;
        Ok(None)
    }

    pub fn new_ttt(&mut self) -> u32 {
        let ttt = self.next_ttt;
        self.next_ttt = match self.next_ttt.wrapping_add(1) {
            RESERVED_TAG | 0 => 1,
            next => next,
        };
        ttt
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::WantData { itt, reply } => {
                let failed = |t: &Task| t.transfer.as_ref().is_some_and(Transfer::failed);
                // Dropping the reply ends a task that must not run.
                let draining = self.draining;
                if let Some(task) = self.tasks.get_mut(&itt).filter(|t| !t.aborted && !failed(t) && !draining) {
                    task.waiter = Some(reply);
                    self.pump(itt).await;
                }
            }
            Event::Done { itt, outcome, hold } => {
                let Some(task) = self.tasks.get_mut(&itt) else { return };
                task.running = false;
                let failed = task.transfer.as_ref().is_some_and(Transfer::failed);
                match outcome {
                    _ if task.aborted => self.forget(itt),
                    Some(outcome) => self.respond(itt, outcome, hold).await,
                    None if failed => self.respond(itt, Outcome::check(Sense::DATA_PHASE_ERROR), None).await,
                    None => self.forget(itt),
                }
            }
        }
    }

    /// Moves a command's data-out along: delivers it, or solicits the next burst.
    pub async fn pump(&mut self, itt: u32) {
        let max_burst = self.s.params.max_burst;
        let tag = self.next_ttt;
        let Some(task) = self.tasks.get_mut(&itt) else { return };
        if task.waiter.is_none() {
            return;
        }
        let next = match task.transfer.as_mut() {
            Some(transfer) => transfer.next(max_burst, || tag),
            None => Next::Deliver(Bytes::new()),
        };
        let lun = task.lun;
        match next {
            Next::Wait => {}
            Next::Deliver(data) => {
                if let Some(waiter) = task.waiter.take() {
                    let _ = waiter.send(data);
                }
            }
            Next::Solicit { ttt, r2t_sn, offset, len } => {
                self.new_ttt();
                let mut h = pdu::header(pdu::OP_R2T, FLAG_FINAL);
                h[8..16].copy_from_slice(&lun);
                pdu::put_u32(&mut h, 16, itt);
                pdu::put_u32(&mut h, 20, ttt);
                pdu::put_u32(&mut h, 36, r2t_sn);
                pdu::put_u32(&mut h, 40, offset);
                pdu::put_u32(&mut h, 44, len);
                self.send(Outgoing::new(h, Bytes::new(), StatSn::Current)).await;
            }
        }
    }

    async fn on_data_out(&mut self, pdu: Pdu) -> Step {
        let b = pdu.bhs;
        let itt = b.itt();
        let Some(task) = self.tasks.get_mut(&itt) else {
            // A command ignored (outside the window), aborted, or already answered.
            tracing::debug!(itt, "iscsi: Data-Out for no current task dropped");
            return Ok(None);
        };
        let Some(transfer) = task.transfer.as_mut() else {
            return self.reject(pdu::REJECT_PROTOCOL_ERROR, &b).await;
        };
        let accepted = transfer.data_out(b.u32(20), b.u32(36), b.u32(40), &pdu.data, b.is_final());
        let closed = !transfer.sequence_open();
        if let Err(e) = &accepted {
            // Error recovery level 0 recovers nothing: the command ends without running, with
            // CHECK CONDITION after the Reject (initiators match the Reject to the command).
            tracing::debug!(itt, error = %e, "iscsi: Data-Out out of step; the command fails");
            task.waiter = None;
            self.reject(pdu::REJECT_PROTOCOL_ERROR, &b).await?;
        }
        let Some(task) = self.tasks.get_mut(&itt) else { return Ok(None) };
        if closed && !task.parked.is_empty() {
            let parked = std::mem::take(&mut task.parked);
            for out in parked {
                self.send(out).await;
            }
            self.forget_answered(itt);
        } else if accepted.is_ok() {
            self.pump(itt).await;
        }
        Ok(None)
    }

    /// Removes a task that ends without a response (aborted): its slot frees up here.
    pub fn forget(&mut self, itt: u32) {
        if let Some(task) = self.tasks.remove(&itt) {
            task.cancel.cancel();
            if !task.immediate {
                self.numbering.release();
            }
        }
    }

    /// Removes a task whose response went to the writer (which frees its slot).
    pub fn forget_answered(&mut self, itt: u32) {
        self.tasks.remove(&itt);
    }

    /// After the loop: ends every task (answering those that finish), then returns so the
    /// writer can drain. Tasks waiting for data or memory are cancelled; device calls under
    /// way finish first.
    pub async fn drain(&mut self) {
        self.draining = true;
        for task in self.tasks.values_mut() {
            task.waiter = None;
            task.cancel.cancel();
        }
        while !self.running.is_empty() {
            tokio::select! {
                _ = self.running.join_next() => {}
                Some(event) = self.events_rx.recv() => self.on_event(event).await,
            }
        }
        while let Ok(event) = self.events_rx.try_recv() {
            self.on_event(event).await;
        }
        let _ = self.tmf_progress().await;
    }
}
