//! The login phase (RFC 7143 §6): security negotiation (AuthMethod None or CHAP), operational
//! negotiation (`params`), then either the full feature phase with a normal session's device
//! opened, or a discovery session. Every refusal is a login response with a status class and
//! detail, after which the connection closes.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::chap::{self, Chap};
use super::params::{Negotiation, SessionParams};
use super::pdu::{self, Bhs, Framing, Pdu, BHS_LEN, FLAG_CONTINUE, FLAG_FINAL, OP_LOGIN_REQ, OP_LOGIN_RESP};
use super::targets::{Access, Targets};
use super::text::{self, Joiner};
use crate::device::BlockDevice;

/// Login PDUs may carry up to the default MaxRecvDataSegmentLength (§13.12).
const LOGIN_SEGMENT: u32 = 8192;
/// Login PDUs one connection may send before giving up: real logins take two to four.
const MAX_LOGIN_PDUS: usize = 64;

const STAGE_SECURITY: u8 = 0;
const STAGE_OPERATIONAL: u8 = 1;
const STAGE_FULL_FEATURE: u8 = 3;

/// A login response's status class and detail (§11.13.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u8, pub u8);

impl Status {
    pub const SUCCESS: Status = Status(0, 0);
    pub const INITIATOR_ERROR: Status = Status(2, 0);
    pub const AUTHENTICATION_FAILED: Status = Status(2, 1);
    pub const NOT_FOUND: Status = Status(2, 3);
    pub const TARGET_REMOVED: Status = Status(2, 4);
    pub const UNSUPPORTED_VERSION: Status = Status(2, 5);
    pub const MISSING_PARAMETER: Status = Status(2, 7);
    pub const SESSION_TYPE_UNSUPPORTED: Status = Status(2, 9);
    pub const NO_SESSION: Status = Status(2, 0x0a);
    pub const INVALID_DURING_LOGIN: Status = Status(2, 0x0b);
    pub const SERVICE_UNAVAILABLE: Status = Status(3, 1);
}

/// Why a login ended without a session.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The initiator was told `status`; the connection closes.
    #[error("login refused ({status:?}): {reason}")]
    Refused { status: Status, reason: String },
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("framing: {0}")]
    Frame(#[from] pdu::FrameError),
    #[error("the connection closed during login")]
    Closed,
}

fn refuse(status: Status, reason: impl Into<String>) -> LoginError {
    LoginError::Refused { status, reason: reason.into() }
}

/// What the session is for.
pub enum SessionKind {
    Discovery,
    Normal { target: String, device: Arc<dyn BlockDevice> },
}

/// A successful login.
pub struct LoggedIn {
    pub kind: SessionKind,
    pub initiator: String,
    pub isid: [u8; 6],
    pub tsih: u16,
    pub params: SessionParams,
    /// The CmdSN the first full-feature command carries.
    pub exp_cmd_sn: u32,
    /// The StatSN of the first full-feature response.
    pub stat_sn: u32,
}

/// Everything one login has gathered so far.
struct Progress<'a> {
    targets: &'a dyn Targets,
    tsih: u16,
    window: u32,
    stat_sn: u32,
    first: Option<Identity>,
    stage: Option<u8>,
    initiator: String,
    discovery: bool,
    target: Option<String>,
    access: Access,
    chap: Option<Chap>,
    authenticated: bool,
    negotiation: Negotiation,
    tpgt_sent: bool,
    joiner: Joiner,
}

/// Fields every login PDU of one connection must repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    isid: [u8; 6],
    tsih: u16,
    cid: u16,
}

/// A login request's header fields.
struct Request {
    bhs: Bhs,
    transit: bool,
    more: bool,
    csg: u8,
    nsg: u8,
    cmd_sn: u32,
    identity: Identity,
}

impl Request {
    fn parse(pdu: &Pdu) -> Result<Self, LoginError> {
        let b = &pdu.bhs;
        if b.opcode() != OP_LOGIN_REQ {
            return Err(refuse(Status::INVALID_DURING_LOGIN, format!("opcode {:#04x} during login", b.opcode())));
        }
        let flags = b.flags();
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&b.0[8..14]);
        let request = Request {
            bhs: *b,
            transit: flags & FLAG_FINAL != 0,
            more: flags & FLAG_CONTINUE != 0,
            csg: (flags >> 2) & 3,
            nsg: flags & 3,
            cmd_sn: b.u32(24),
            identity: Identity { isid, tsih: b.u16(14), cid: b.u16(20) },
        };
        // Version-max and version-min: only version 0 exists.
        if b.0[3] != 0 {
            return Err(refuse(Status::UNSUPPORTED_VERSION, format!("version-min {}", b.0[3])));
        }
        if request.transit && request.more {
            return Err(refuse(Status::INITIATOR_ERROR, "T and C both set"));
        }
        if !matches!(request.csg, STAGE_SECURITY | STAGE_OPERATIONAL) {
            return Err(refuse(Status::INITIATOR_ERROR, format!("current stage {}", request.csg)));
        }
        let next_ok = match request.csg {
            STAGE_SECURITY => matches!(request.nsg, STAGE_OPERATIONAL | STAGE_FULL_FEATURE),
            _ => request.nsg == STAGE_FULL_FEATURE,
        };
        if request.transit && !next_ok {
            return Err(refuse(Status::INITIATOR_ERROR, format!("transit from {} to {}", request.csg, request.nsg)));
        }
        Ok(request)
    }
}

/// Runs the login phase on `stream`. `tsih` is the handle a new session gets; `window` the
/// number of commands the session accepts at once (for the first MaxCmdSN).
pub async fn login<S>(stream: &mut S, targets: &dyn Targets, tsih: u16, window: u32) -> Result<LoggedIn, LoginError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut p = Progress {
        targets,
        tsih,
        window,
        stat_sn: 1,
        first: None,
        stage: None,
        initiator: String::new(),
        discovery: false,
        target: None,
        access: Access::default(),
        chap: None,
        authenticated: false,
        negotiation: Negotiation::default(),
        tpgt_sent: false,
        joiner: Joiner::default(),
    };
    let framing = Framing { max_data: LOGIN_SEGMENT, header_digest: false, data_digest: false };
    let mut last: Option<Request> = None;
    for _ in 0..MAX_LOGIN_PDUS {
        let Some(pdu) = pdu::read_pdu(stream, &framing).await? else { return Err(LoginError::Closed) };
        let step = match Request::parse(&pdu) {
            Ok(request) => {
                let step = p.step(&request, &pdu.data).await;
                last = Some(request);
                step
            }
            Err(e) => Err(e),
        };
        match step {
            Ok(Step::Continue(response)) => stream.write_all(&response).await?,
            Ok(Step::Done(response, logged_in)) => {
                stream.write_all(&response).await?;
                stream.flush().await?;
                return Ok(*logged_in);
            }
            Err(LoginError::Refused { status, reason }) => {
                let response = p.failure(last.as_ref(), &pdu.bhs, status);
                stream.write_all(&response).await?;
                stream.flush().await?;
                return Err(LoginError::Refused { status, reason });
            }
            Err(e) => return Err(e),
        }
    }
    Err(refuse(Status::INITIATOR_ERROR, "too many login PDUs"))
}

enum Step {
    Continue(Vec<u8>),
    Done(Vec<u8>, Box<LoggedIn>),
}

impl Progress<'_> {
    async fn step(&mut self, r: &Request, data: &Bytes) -> Result<Step, LoginError> {
        match self.first {
            None => {
                if r.identity.tsih != 0 {
                    // Adding a connection to (or reinstating) a session: one connection each here.
                    return Err(refuse(Status::NO_SESSION, "only new sessions (TSIH 0) are accepted"));
                }
                self.first = Some(r.identity);
            }
            Some(first) if first != r.identity => {
                return Err(refuse(Status::INITIATOR_ERROR, "ISID, TSIH or CID changed during login"));
            }
            Some(_) => {}
        }
        if self.stage.is_some_and(|s| s != r.csg) {
            return Err(refuse(Status::INITIATOR_ERROR, format!("stage {} is not the current stage", r.csg)));
        }
        self.stage = Some(r.csg);
        let text = match self.joiner.push(data, r.more) {
            Err(e) => return Err(refuse(Status::INITIATOR_ERROR, e.to_string())),
            // Acknowledge each continued PDU with an empty response until the text is whole.
            Ok(None) => return Ok(Step::Continue(self.response(r, false, r.csg, &[], 0))),
            Ok(Some(text)) => text,
        };
        let keys = text::parse(&text).map_err(|e| refuse(Status::INITIATOR_ERROR, e.to_string()))?;
        if self.initiator.is_empty() {
            self.identify(&keys).await?;
        }
        let mut answer: Vec<(String, String)> = Vec::new();
        if !self.tpgt_sent && !self.discovery {
            // Declared in the first response of a normal session's leading connection.
            answer.push(("TargetPortalGroupTag".into(), "1".into()));
            self.tpgt_sent = true;
        }
        if r.csg == STAGE_SECURITY {
            answer.extend(self.security(&keys)?);
        } else if !self.authenticated {
            if self.access.chap.is_some() {
                return Err(refuse(Status::AUTHENTICATION_FAILED, "CHAP is required"));
            }
            self.authenticated = true;
        }
        for (k, v) in &keys {
            answer.extend(self.negotiation.offer(k, v));
        }
        let transit = r.transit && self.authenticated;
        let nsg = if transit { r.nsg } else { 0 };
        if transit {
            self.stage = Some(nsg);
        }
        if !(transit && nsg == STAGE_FULL_FEATURE) {
            return Ok(Step::Continue(self.response(r, transit, nsg, &answer, 0)));
        }
        answer.extend(self.negotiation.finish());
        let kind = match &self.target {
            None => SessionKind::Discovery,
            Some(target) => match self.targets.open(target, &self.initiator).await {
                Ok(Some(device)) => SessionKind::Normal { target: target.clone(), device },
                Ok(None) => return Err(refuse(Status::TARGET_REMOVED, format!("{target} went away"))),
                Err(e) => return Err(refuse(Status::SERVICE_UNAVAILABLE, format!("{target}: {e}"))),
            },
        };
        let response = self.response(r, true, nsg, &answer, self.tsih);
        let identity = self.first.unwrap_or(r.identity);
        let logged_in = LoggedIn {
            kind,
            initiator: std::mem::take(&mut self.initiator),
            isid: identity.isid,
            tsih: self.tsih,
            params: self.negotiation.params,
            exp_cmd_sn: r.cmd_sn,
            stat_sn: self.stat_sn,
        };
        Ok(Step::Done(response, Box::new(logged_in)))
    }

    /// Reads the names from the first request, and finds the target.
    async fn identify(&mut self, keys: &[(String, String)]) -> Result<(), LoginError> {
        let get = |name: &str| keys.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let initiator = get("InitiatorName").filter(|n| !n.is_empty());
        let Some(initiator) = initiator else {
            return Err(refuse(Status::MISSING_PARAMETER, "no InitiatorName in the first login request"));
        };
        match get("SessionType").as_deref() {
            None | Some("Normal") => {}
            Some("Discovery") => self.discovery = true,
            Some(other) => return Err(refuse(Status::SESSION_TYPE_UNSUPPORTED, format!("session type {other}"))),
        }
        if !self.discovery {
            let Some(target) = get("TargetName") else {
                return Err(refuse(Status::MISSING_PARAMETER, "no TargetName for a normal session"));
            };
            self.access = match self.targets.access(&target, &initiator).await {
                Ok(Some(access)) => access,
                Ok(None) => return Err(refuse(Status::NOT_FOUND, format!("no target {target}"))),
                Err(e) => return Err(refuse(Status::SERVICE_UNAVAILABLE, format!("{target}: {e}"))),
            };
            self.target = Some(target);
        }
        self.initiator = initiator;
        Ok(())
    }

    /// The security stage's keys: AuthMethod, then the CHAP exchange.
    fn security(&mut self, keys: &[(String, String)]) -> Result<Vec<(String, String)>, LoginError> {
        let mut answer = Vec::new();
        // Discovery sessions are not authenticated: they reveal only target names.
        let required = if self.discovery { None } else { self.access.chap.clone() };
        if let Some((_, offered)) = keys.iter().rev().find(|(k, _)| k == "AuthMethod") {
            let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
            let choice = if required.is_some() { "CHAP" } else { "None" };
            if !offered.contains(&choice) {
                return Err(refuse(Status::AUTHENTICATION_FAILED, format!("AuthMethod {choice} not offered")));
            }
            answer.push(("AuthMethod".into(), choice.into()));
            match &required {
                Some(creds) if self.chap.is_none() => self.chap = Some(Chap::new(&creds.user, &creds.secret)),
                Some(_) => {}
                None => self.authenticated = true,
            }
        }
        match &mut self.chap {
            Some(chap) => {
                let mut rng_failed = false;
                let step = chap.step(keys, || {
                    chap::fresh().unwrap_or_else(|_| {
                        rng_failed = true;
                        (0, [0; chap::CHALLENGE_LEN])
                    })
                });
                if rng_failed {
                    return Err(refuse(Status::SERVICE_UNAVAILABLE, "the system random generator failed"));
                }
                answer.extend(step.map_err(|e| refuse(Status::AUTHENTICATION_FAILED, e.to_string()))?);
                self.authenticated = chap.done();
            }
            None if required.is_some() => {
                if keys.iter().any(|(k, _)| k.starts_with("CHAP_")) {
                    return Err(refuse(Status::AUTHENTICATION_FAILED, "CHAP keys before AuthMethod"));
                }
            }
            // Without AuthMethod, the default is None: fine when nothing is required.
            None => self.authenticated = true,
        }
        Ok(answer)
    }

    fn response(&mut self, r: &Request, transit: bool, nsg: u8, keys: &[(String, String)], tsih: u16) -> Vec<u8> {
        let data = text::encode(keys);
        let flags = if transit { FLAG_FINAL } else { 0 } | (r.csg << 2) | if transit { nsg } else { 0 };
        let h = self.header(&r.bhs, flags, tsih, r.cmd_sn, Status::SUCCESS, data.len());
        pdu::encode(&h, &data, false, false)
    }

    /// A refusal answering `bhs` (parsed as `r` if it was a valid login request).
    fn failure(&mut self, r: Option<&Request>, bhs: &Bhs, status: Status) -> Vec<u8> {
        let csg = r.map_or(0, |r| r.csg);
        let h = self.header(bhs, csg << 2, 0, bhs.u32(24), status, 0);
        pdu::encode(&h, &[], false, false)
    }

    fn header(&mut self, req: &Bhs, flags: u8, tsih: u16, cmd_sn: u32, status: Status, len: usize) -> [u8; BHS_LEN] {
        let mut h = pdu::header(OP_LOGIN_RESP, flags);
        pdu::put_data_len(&mut h, len);
        h[8..14].copy_from_slice(&req.0[8..14]);
        pdu::put_u16(&mut h, 14, tsih);
        pdu::put_u32(&mut h, 16, req.itt());
        pdu::put_u32(&mut h, 24, self.stat_sn);
        self.stat_sn = self.stat_sn.wrapping_add(1);
        pdu::put_u32(&mut h, 28, cmd_sn);
        pdu::put_u32(&mut h, 32, cmd_sn.wrapping_add(self.window.saturating_sub(1)));
        h[36] = status.0;
        h[37] = status.1;
        h
    }
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod tests;
