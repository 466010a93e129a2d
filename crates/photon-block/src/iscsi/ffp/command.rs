//! SCSI Command PDUs in, Data-In and SCSI Response PDUs out (RFC 7143 §11.3, §11.4, §11.7):
//! a command is checked against the window and the data-out rules, planned by the logical
//! unit, and run as its own task; its answer carries the data split by the initiator's
//! MaxRecvDataSegmentLength, with the status in the last Data-In when it is GOOD.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::core::{Core, Event, Step, Task};
use super::transfer::Transfer;
use super::{ConnectionError, MAX_IMMEDIATE, MEMORY_BUDGET};
use crate::iscsi::pdu::{self, Outgoing, Pdu, StatSn, FLAG_FINAL, RESERVED_TAG};
use crate::iscsi::scsi::{sense, Command, LogicalUnit, Nexus, Outcome, LOGICAL_BLOCK};

const FLAG_READ: u8 = 0x40;
const FLAG_WRITE: u8 = 0x20;
// Residual flags, in the SCSI Response and in a Data-In with status.
const OVERFLOW: u8 = 0x04;
const UNDERFLOW: u8 = 0x02;
const DATA_IN_STATUS: u8 = 0x01;
/// AHS types (§11.2.1.2).
const AHS_EXTENDED_CDB: u8 = 1;
const AHS_BIDI_READ_LENGTH: u8 = 2;

/// The logical unit number a LUN field addresses (peripheral or flat addressing), if any.
pub fn lun_number(lun: [u8; 8]) -> Option<u16> {
    if lun[0] >> 6 > 1 || lun[2..].iter().any(|&b| b != 0) {
        return None;
    }
    Some(u16::from(lun[0] & 0x3f) << 8 | u16::from(lun[1]))
}

/// The CDB: the header's 16 bytes and an extended CDB from the AHS. `None`: the AHS does not
/// parse.
fn cdb_of(pdu: &Pdu) -> Option<Vec<u8>> {
    let mut cdb = pdu.bhs.0[32..48].to_vec();
    let mut ahs = &pdu.ahs[..];
    while !ahs.is_empty() {
        if ahs.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([ahs[0], ahs[1]]));
        let total = pdu::padded(3 + len);
        if len == 0 || total > ahs.len() {
            return None;
        }
        match ahs[2] {
            AHS_EXTENDED_CDB => cdb.extend_from_slice(&ahs[4..3 + len]),
            AHS_BIDI_READ_LENGTH => {}
            _ => return None,
        }
        ahs = &ahs[total..];
    }
    Some(cdb)
}

/// Memory a command holds while it runs: its data-out, and what it reads.
fn memory(cmd: &Command, need: u32) -> u32 {
    let reads = match *cmd {
        Command::Read { blocks, .. } => blocks * LOGICAL_BLOCK,
        Command::CompareAndWrite { blocks, .. } => blocks * LOGICAL_BLOCK,
        // These move at most 1 MiB per device call.
        Command::Verify { .. } | Command::WriteSame { .. } => 1 << 20,
        _ => 0,
    };
    need.saturating_add(reads).min(MEMORY_BUDGET)
}

/// Residual flags and count: what the command transfers against what the initiator expected.
fn residual(actual: u32, expected: u32) -> (u8, u32) {
    if actual > expected {
        (OVERFLOW, actual - expected)
    } else if actual < expected {
        (UNDERFLOW, expected - actual)
    } else {
        (0, 0)
    }
}

impl Core {
    pub(super) async fn on_command(&mut self, pdu: Pdu) -> Step {
        let b = pdu.bhs;
        let (itt, edtl, cmd_sn) = (b.itt(), b.u32(20), b.u32(24));
        let (read, write) = (b.flags() & FLAG_READ != 0, b.flags() & FLAG_WRITE != 0);
        let Some(unit) = self.s.unit.clone() else {
            // Discovery sessions carry no SCSI.
            return self.reject(pdu::REJECT_PROTOCOL_ERROR, &b).await;
        };
        if !b.immediate() && !self.numbering.in_window(cmd_sn) {
            tracing::debug!(itt, cmd_sn, "iscsi: command outside the command window ignored");
            return Ok(None);
        }
        if itt == RESERVED_TAG {
            return self.reject(pdu::REJECT_INVALID_PDU_FIELD, &b).await;
        }
        if self.tasks.contains_key(&itt) {
            return self.reject(pdu::REJECT_TASK_IN_PROGRESS, &b).await;
        }
        if b.immediate() && self.tasks.values().filter(|t| t.immediate).count() >= MAX_IMMEDIATE {
            return self.reject(pdu::REJECT_IMMEDIATE_COMMAND, &b).await;
        }
        let Some(cdb) = cdb_of(&pdu) else { return self.reject(pdu::REJECT_PROTOCOL_ERROR, &b).await };
        let p = self.s.params;
        let immediate_allowed = write && p.immediate_data;
        if !pdu.data.is_empty() && !immediate_allowed {
            return Err(ConnectionError::Protocol(format!("task {itt:#x}: immediate data not allowed")));
        }
        if !b.is_final() && (!write || p.initial_r2t) {
            return Err(ConnectionError::Protocol(format!("task {itt:#x}: unsolicited data not allowed")));
        }
        if !b.immediate() {
            self.numbering.accept(cmd_sn);
        }
        self.commands += 1;
        let (edtl_in, edtl_out) = (if read { edtl } else { 0 }, if write { edtl } else { 0 });
        let lun = b.lun();
        let planned = match lun_number(lun) {
            Some(0) => unit.plan(&cdb, &self.s.nexus, edtl_out),
            _ => Err(LogicalUnit::absent_lun(&cdb)),
        };
        let out_needed = planned.as_ref().map_or(0, Command::data_out_len);
        let need = out_needed.min(edtl_out);
        let transfer = if write {
            let t = Transfer::new(edtl_out, need, p.first_burst, &pdu.data, b.is_final())
                .map_err(|e| ConnectionError::Protocol(format!("task {itt:#x}: {e}")))?;
            Some(t)
        } else {
            None
        };
        let cancel = self.closing.child_token();
        let task = Task {
            lun,
            immediate: b.immediate(),
            edtl_in,
            edtl_out,
            out_needed,
            transfer,
            waiter: None,
            parked: Vec::new(),
            cancel: cancel.clone(),
            running: planned.is_ok(),
            aborted: false,
            data_in: 0,
        };
        self.tasks.insert(itt, task);
        match planned {
            Err(outcome) => self.respond(itt, outcome, None).await,
            Ok(cmd) => {
                let run = Running {
                    unit,
                    nexus: self.s.nexus.clone(),
                    itt,
                    need,
                    memory: memory(&cmd, need),
                    budget: self.budget.clone(),
                    events: self.events.clone(),
                    cancel,
                };
                self.running.spawn(run.run(cmd));
            }
        }
        Ok(None)
    }

    /// Sends a command's Data-In and status (or holds them until its unsolicited data has all
    /// arrived), then forgets the task.
    pub(super) async fn respond(&mut self, itt: u32, outcome: Outcome, hold: Option<OwnedSemaphorePermit>) {
        let p = self.s.params;
        let Some(task) = self.tasks.get_mut(&itt) else { return };
        let data_len = outcome.data.len() as u32;
        let (actual, expected) = if task.out_needed > 0 || (task.edtl_out > 0 && data_len == 0) {
            (task.out_needed, task.edtl_out)
        } else {
            (data_len, task.edtl_in)
        };
        let (flags, count) = residual(actual, expected);
        let sent = data_len.min(task.edtl_in);
        let good = outcome.status == sense::GOOD && outcome.sense.is_none();
        let collapse = good && sent > 0;
        let releases = !task.immediate;
        let mut pdus = data_in(&outcome.data.slice(..sent as usize), itt, p.max_send_segment, p.max_burst);
        task.data_in = pdus.len() as u32;
        if collapse {
            if let Some(last) = pdus.last_mut() {
                last.bhs[1] |= DATA_IN_STATUS | flags;
                last.bhs[3] = outcome.status;
                pdu::put_u32(&mut last.bhs, 44, count);
                last.stat = StatSn::Advance;
                last.releases_slot = releases;
            }
        } else {
            let exp_data_sn = task.data_in + task.transfer.as_ref().map_or(0, Transfer::r2ts);
            let mut h = pdu::header(pdu::OP_SCSI_RESP, FLAG_FINAL | flags);
            h[3] = outcome.status;
            pdu::put_u32(&mut h, 16, itt);
            pdu::put_u32(&mut h, 36, exp_data_sn);
            pdu::put_u32(&mut h, 44, count);
            let mut data = BytesMut::new();
            if let Some(s) = outcome.sense {
                let fixed = s.fixed();
                data.extend_from_slice(&(fixed.len() as u16).to_be_bytes());
                data.extend_from_slice(&fixed);
            }
            pdus.push(Outgoing::new(h, data.freeze(), StatSn::Advance).releasing(releases));
        }
        if let Some(last) = pdus.last_mut() {
            last.hold = hold;
        }
        if task.transfer.as_ref().is_some_and(Transfer::sequence_open) {
            task.parked = pdus;
            return;
        }
        for out in pdus {
            self.send(out).await;
        }
        self.forget_answered(itt);
    }
}

/// Data-In PDUs for `data`: sequences of at most `max_burst` bytes (F on each one's last
/// PDU), PDUs of at most `max_segment` bytes, DataSN from 0.
fn data_in(data: &Bytes, itt: u32, max_segment: u32, max_burst: u32) -> Vec<Outgoing> {
    let (len, max_segment, max_burst) = (data.len(), max_segment.max(1) as usize, max_burst.max(1) as usize);
    let mut pdus = Vec::with_capacity(len.div_ceil(max_segment));
    let mut offset = 0;
    while offset < len {
        let burst_end = (offset - offset % max_burst + max_burst).min(len);
        let n = (burst_end - offset).min(max_segment);
        let flags = if offset + n == burst_end { FLAG_FINAL } else { 0 };
        let mut h = pdu::header(pdu::OP_DATA_IN, flags);
        pdu::put_u32(&mut h, 16, itt);
        pdu::put_u32(&mut h, 20, RESERVED_TAG);
        pdu::put_u32(&mut h, 36, pdus.len() as u32);
        pdu::put_u32(&mut h, 40, offset as u32);
        pdus.push(Outgoing::new(h, data.slice(offset..offset + n), StatSn::Absent));
        offset += n;
    }
    pdus
}

/// One command's task: reserve memory, get the data-out, run, report.
struct Running {
    unit: Arc<LogicalUnit>,
    nexus: Nexus,
    itt: u32,
    need: u32,
    memory: u32,
    budget: Arc<Semaphore>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
}

impl Running {
    async fn run(self, cmd: Command) {
        let outcome = self.prepare_and_execute(cmd).await;
        let (outcome, hold) = match outcome {
            Some((outcome, hold)) => (Some(outcome), hold),
            None => (None, None),
        };
        let _ = self.events.send(Event::Done { itt: self.itt, outcome, hold }).await;
    }

    async fn prepare_and_execute(&self, cmd: Command) -> Option<(Outcome, Option<OwnedSemaphorePermit>)> {
        let hold = if self.memory > 0 {
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                permit = self.budget.clone().acquire_many_owned(self.memory) => Some(permit.ok()?),
            }
        } else {
            None
        };
        let data = if self.need > 0 {
            let (reply, wait) = oneshot::channel();
            self.events.send(Event::WantData { itt: self.itt, reply }).await.ok()?;
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                data = wait => data.ok()?,
            }
        } else {
            Bytes::new()
        };
        Some((self.unit.execute(cmd, data, &self.nexus).await, hold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lun_numbers_from_peripheral_and_flat_addressing() {
        assert_eq!(lun_number([0; 8]), Some(0));
        assert_eq!(lun_number([0, 5, 0, 0, 0, 0, 0, 0]), Some(5));
        assert_eq!(lun_number([0x40, 0, 0, 0, 0, 0, 0, 0]), Some(0));
        assert_eq!(lun_number([0xc0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(lun_number([0, 0, 1, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn data_in_splits_by_segment_and_burst() {
        let data = Bytes::from(vec![7u8; 10_000]);
        let pdus = data_in(&data, 9, 4096, 6000);
        let sizes: Vec<usize> = pdus.iter().map(|p| p.data.len()).collect();
        assert_eq!(sizes, vec![4096, 1904, 4000]);
        let finals: Vec<bool> = pdus.iter().map(|p| p.bhs[1] & FLAG_FINAL != 0).collect();
        assert_eq!(finals, vec![false, true, true]);
        assert_eq!(&pdus[2].bhs[36..44], &[0, 0, 0, 2, 0, 0, 0x17, 0x70]);
        assert!(data_in(&Bytes::new(), 1, 512, 512).is_empty());
    }

    #[test]
    fn residuals_and_ahs() {
        assert_eq!(residual(512, 0), (OVERFLOW, 512));
        assert_eq!(residual(512, 10_000), (UNDERFLOW, 9488));
        assert_eq!(residual(8, 8), (0, 0));
        let mut bhs = [0u8; 48];
        bhs[32] = 0x7f;
        let mut ahs = vec![0, 17, AHS_EXTENDED_CDB, 0];
        ahs.extend_from_slice(&[1; 16]);
        let pdu = Pdu { bhs: pdu::Bhs(bhs), ahs: Bytes::from(ahs), data: Bytes::new() };
        assert_eq!(cdb_of(&pdu).map(|c| c.len()), Some(32));
        let bad = Pdu { ahs: Bytes::from_static(&[0, 40, 1, 0, 0, 0, 0, 0]), ..pdu.clone() };
        assert_eq!(cdb_of(&bad), None);
        let unknown = Pdu { ahs: Bytes::from_static(&[0, 1, 9, 0]), ..pdu };
        assert_eq!(cdb_of(&unknown), None);
    }
}
