//! The non-SCSI requests of the full feature phase: NOP-Out pings, Text (SendTargets, which
//! discovery sessions exist for), Logout, and task management (RFC 7143 §11.5, §11.10,
//! §11.14, §11.18). At error recovery level 0 a task is aborted by cancelling whatever it
//! waits for; the answer goes out once every task it ends has ended.

use bytes::Bytes;

use super::command::lun_number;
use super::core::{Core, PendingText, PendingTmf, Step};
use super::Ending;
use crate::iscsi::pdu::{self, Bhs, Outgoing, Pdu, StatSn, FLAG_CONTINUE, FLAG_FINAL, RESERVED_TAG};
use crate::iscsi::text;

// Task management functions (§11.5.1) and responses (§11.6.1).
const ABORT_TASK: u8 = 1;
const ABORT_TASK_SET: u8 = 2;
const CLEAR_ACA: u8 = 3;
const CLEAR_TASK_SET: u8 = 4;
const LUN_RESET: u8 = 5;
const TARGET_WARM_RESET: u8 = 6;
const TARGET_COLD_RESET: u8 = 7;
const TASK_REASSIGN: u8 = 8;
const TMF_COMPLETE: u8 = 0;
const TMF_NO_TASK: u8 = 1;
const TMF_NO_LUN: u8 = 2;
const TMF_NO_REASSIGNMENT: u8 = 4;
const TMF_NOT_SUPPORTED: u8 = 5;
const TMF_REJECTED: u8 = 255;

/// Task management requests waiting for their tasks to end; more are refused, so a flood of
/// them cannot grow the connection's state.
const MAX_PENDING_TMF: usize = 16;

// Logout reasons and responses (§11.14.1, §11.15.1).
const LOGOUT_REMOVE_FOR_RECOVERY: u8 = 2;
const LOGOUT_OK: u8 = 0;
const LOGOUT_NO_RECOVERY: u8 = 2;

impl Core {
    pub(super) async fn on_nop_out(&mut self, pdu: Pdu) -> Step {
        let b = pdu.bhs;
        if b.itt() == RESERVED_TAG {
            // A ping needing no answer, or the answer to one of ours. A non-immediate one
            // took a window slot that nothing will answer.
            if !b.immediate() {
                self.numbering.release();
            }
            return Ok(None);
        }
        let mut h = pdu::header(pdu::OP_NOP_IN, FLAG_FINAL);
        h[8..16].copy_from_slice(&b.0[8..16]);
        pdu::put_u32(&mut h, 16, b.itt());
        pdu::put_u32(&mut h, 20, RESERVED_TAG);
        let echo = pdu.data.slice(..pdu.data.len().min(self.s.params.max_send_segment as usize));
        self.send(Outgoing::new(h, echo, StatSn::Advance).releasing(!b.immediate())).await;
        Ok(None)
    }

    pub(super) async fn on_text(&mut self, pdu: Pdu) -> Step {
        let b = pdu.bhs;
        let ttt = b.u32(20);
        let body = if ttt != RESERVED_TAG {
            // The initiator asks for the next part of a long answer.
            match self.text.take() {
                Some(pending) if pending.ttt == ttt => pending.rest,
                _ => return self.reject(pdu::REJECT_INVALID_PDU_FIELD, &b).await,
            }
        } else {
            self.text = None;
            let text = match self.text_joiner.push(&pdu.data, b.flags() & FLAG_CONTINUE != 0) {
                Ok(Some(text)) => text,
                // More text follows: acknowledge with an empty response.
                Ok(None) => Vec::new(),
                Err(_) => return self.reject(pdu::REJECT_PROTOCOL_ERROR, &b).await,
            };
            match text::parse(&text) {
                Ok(keys) => Bytes::from(text::encode(&self.answer_text(&keys).await)),
                Err(_) => return self.reject(pdu::REJECT_PROTOCOL_ERROR, &b).await,
            }
        };
        let max = self.s.params.max_send_segment as usize;
        let (part, rest) = if body.len() > max { (body.slice(..max), Some(body.slice(max..))) } else { (body, None) };
        let mut h = pdu::header(pdu::OP_TEXT_RESP, if rest.is_some() { FLAG_CONTINUE } else { FLAG_FINAL });
        h[8..16].copy_from_slice(&b.0[8..16]);
        pdu::put_u32(&mut h, 16, b.itt());
        let next_ttt = match rest {
            Some(rest) => {
                let ttt = self.new_ttt();
                self.text = Some(PendingText { ttt, rest });
                ttt
            }
            None => RESERVED_TAG,
        };
        pdu::put_u32(&mut h, 20, next_ttt);
        self.send(Outgoing::new(h, part, StatSn::Advance).releasing(!b.immediate())).await;
        Ok(None)
    }

    /// Answers Text keys: SendTargets lists targets with this portal's address; nothing is
    /// renegotiated in the full feature phase.
    async fn answer_text(&mut self, keys: &[(String, String)]) -> Vec<(String, String)> {
        let mut answer = Vec::new();
        for (key, value) in keys {
            if key != "SendTargets" {
                answer.push((key.clone(), "NotUnderstood".to_string()));
                continue;
            }
            let names = match (value.as_str(), &self.s.target) {
                ("All", None) => match self.s.targets.discover(&self.s.nexus.initiator).await {
                    Ok(names) => names,
                    Err(e) => {
                        tracing::warn!(error = %e, "iscsi: listing targets failed");
                        Vec::new()
                    }
                },
                // A normal session reports its own target only.
                ("" | "All", Some(target)) => vec![target.clone()],
                (name, _) => {
                    let found = self.s.targets.access(name, &self.s.nexus.initiator).await;
                    if matches!(found, Ok(Some(_))) {
                        vec![name.to_string()]
                    } else {
                        Vec::new()
                    }
                }
            };
            let address = match self.s.portal {
                std::net::SocketAddr::V4(a) => format!("{}:{},1", a.ip(), a.port()),
                std::net::SocketAddr::V6(a) => format!("[{}]:{},1", a.ip(), a.port()),
            };
            for name in names {
                answer.push(("TargetName".to_string(), name));
                answer.push(("TargetAddress".to_string(), address.clone()));
            }
        }
        answer
    }

    pub(super) async fn on_logout(&mut self, pdu: Pdu) -> Step {
        let b = pdu.bhs;
        let reason = b.flags() & 0x7f;
        let response = if reason == LOGOUT_REMOVE_FOR_RECOVERY { LOGOUT_NO_RECOVERY } else { LOGOUT_OK };
        // Commands under way finish and are answered before the logout response (§11.14).
        self.drain().await;
        // The nexus is gone once the initiator hears so: a session it opens next must not find
        // this one's reservation still held (a logout answered first raced the next login).
        if let Some(unit) = &self.s.unit {
            unit.nexus_lost(&self.s.nexus);
        }
        let mut h = pdu::header(pdu::OP_LOGOUT_RESP, FLAG_FINAL);
        h[2] = response;
        pdu::put_u32(&mut h, 16, b.itt());
        self.send(Outgoing::new(h, Bytes::new(), StatSn::Advance).releasing(!b.immediate())).await;
        Ok(Some(Ending::Logout))
    }

    pub(super) async fn on_tmf(&mut self, pdu: Pdu) -> Step {
        let b = pdu.bhs;
        let function = b.flags() & 0x7f;
        let lun_ok = lun_number(b.lun()) == Some(0);
        let response = match function {
            _ if self.tmfs.len() >= MAX_PENDING_TMF => TMF_REJECTED,
            ABORT_TASK | ABORT_TASK_SET | CLEAR_ACA | CLEAR_TASK_SET | LUN_RESET if !lun_ok => TMF_NO_LUN,
            ABORT_TASK => {
                let referenced = b.u32(20);
                if self.tasks.contains_key(&referenced) {
                    self.abort(&[referenced]);
                    self.tmfs.push(PendingTmf { bhs: b, waiting: vec![referenced] });
                    return self.tmf_progress().await;
                }
                TMF_NO_TASK
            }
            ABORT_TASK_SET | CLEAR_TASK_SET | LUN_RESET => {
                let all: Vec<u32> = self.tasks.keys().copied().collect();
                self.abort(&all);
                if function == LUN_RESET {
                    if let Some(unit) = &self.s.unit {
                        unit.reset();
                    }
                }
                self.tmfs.push(PendingTmf { bhs: b, waiting: all });
                return self.tmf_progress().await;
            }
            // No ACA is ever established (NACA is not supported).
            CLEAR_ACA => TMF_COMPLETE,
            // Resetting the target would reach other initiators' sessions; a LUN RESET is the
            // reset offered.
            TARGET_WARM_RESET | TARGET_COLD_RESET => TMF_NOT_SUPPORTED,
            TASK_REASSIGN => TMF_NO_REASSIGNMENT,
            _ => TMF_REJECTED,
        };
        self.send(tmf_response(&b, response)).await;
        Ok(None)
    }

    /// Aborts tasks: cancels what they wait for and drops any answer held for them. Tasks
    /// with a device call under way end when it returns; their answers are dropped.
    fn abort(&mut self, itts: &[u32]) {
        let mut ended = Vec::new();
        for itt in itts {
            if let Some(task) = self.tasks.get_mut(itt) {
                task.aborted = true;
                task.waiter = None;
                task.cancel.cancel();
                if !task.running {
                    ended.push(*itt);
                }
            }
        }
        for itt in ended {
            if let Some(task) = self.tasks.get_mut(&itt) {
                // An answer held for unsolicited data still frees its slot when dropped.
                task.parked.clear();
            }
            self.forget(itt);
        }
    }

    /// Answers the task management requests whose tasks have all ended.
    pub(super) async fn tmf_progress(&mut self) -> Step {
        let (done, waiting): (Vec<PendingTmf>, Vec<PendingTmf>) = std::mem::take(&mut self.tmfs)
            .into_iter()
            .partition(|t| t.waiting.iter().all(|i| !self.tasks.contains_key(i)));
        self.tmfs = waiting;
        for tmf in done {
            self.send(tmf_response(&tmf.bhs, TMF_COMPLETE)).await;
        }
        Ok(None)
    }
}

fn tmf_response(request: &Bhs, response: u8) -> Outgoing {
    let mut h = pdu::header(pdu::OP_TMF_RESP, FLAG_FINAL);
    h[2] = response;
    pdu::put_u32(&mut h, 16, request.itt());
    Outgoing::new(h, Bytes::new(), StatSn::Advance).releasing(!request.immediate())
}
