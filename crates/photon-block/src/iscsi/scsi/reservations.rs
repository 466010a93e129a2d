//! Reservations of one logical unit, shared by every session to its target: SPC-4 persistent
//! reservations (registrations, the reservation and its type, the generation) and the older
//! SPC-2 RESERVE(6)/RELEASE(6). Kept in memory for the server's lifetime, keyed by target name
//! in `Registry` with the unit attentions; they do not survive a restart (APTPL is not
//! offered). The rules are pure
//! functions of the state, so each is tested on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::cdb::{Access, Command};
use super::sense::Sense;
use super::{Nexus, Outcome};

// Reservation types (SPC-4 §6.16.3.4).
pub const WRITE_EXCLUSIVE: u8 = 1;
pub const EXCLUSIVE_ACCESS: u8 = 3;
pub const WRITE_EXCLUSIVE_REGISTRANTS_ONLY: u8 = 5;
pub const EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: u8 = 6;
pub const WRITE_EXCLUSIVE_ALL_REGISTRANTS: u8 = 7;
pub const EXCLUSIVE_ACCESS_ALL_REGISTRANTS: u8 = 8;

pub fn valid_type(kind: u8) -> bool {
    matches!(
        kind,
        WRITE_EXCLUSIVE | EXCLUSIVE_ACCESS | WRITE_EXCLUSIVE_REGISTRANTS_ONLY..=EXCLUSIVE_ACCESS_ALL_REGISTRANTS
    )
}

fn all_registrants(kind: u8) -> bool {
    matches!(kind, WRITE_EXCLUSIVE_ALL_REGISTRANTS | EXCLUSIVE_ACCESS_ALL_REGISTRANTS)
}

fn registrants_have_access(kind: u8) -> bool {
    kind >= WRITE_EXCLUSIVE_REGISTRANTS_ONLY
}

fn exclusive_access(kind: u8) -> bool {
    matches!(kind, EXCLUSIVE_ACCESS | EXCLUSIVE_ACCESS_REGISTRANTS_ONLY | EXCLUSIVE_ACCESS_ALL_REGISTRANTS)
}

/// A registration: an I_T nexus and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub port: Arc<str>,
    pub key: u64,
}

/// The persistent reservation, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The nexus that reserved (for all-registrants types, every registrant holds it).
    pub holder: Arc<str>,
    pub kind: u8,
}

/// Everything reserved on one logical unit.
#[derive(Debug, Default, Clone)]
pub struct State {
    pub generation: u32,
    /// In registration order (READ KEYS lists them so).
    pub registrations: Vec<Registration>,
    pub reservation: Option<Reservation>,
    /// The nexus holding an SPC-2 reservation.
    pub legacy: Option<Arc<str>>,
}

/// A PERSISTENT RESERVE OUT request, its parameter list already decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub action: u8,
    pub kind: u8,
    pub key: u64,
    pub service_key: u64,
}

// Service actions (SPC-4 §6.17.2).
pub const REGISTER: u8 = 0;
pub const RESERVE: u8 = 1;
pub const RELEASE: u8 = 2;
pub const CLEAR: u8 = 3;
pub const PREEMPT: u8 = 4;
pub const PREEMPT_AND_ABORT: u8 = 5;
pub const REGISTER_AND_IGNORE: u8 = 6;

/// How a PERSISTENT RESERVE OUT ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Good,
    Conflict,
    Check(Sense),
}

impl State {
    fn key_of(&self, port: &str) -> Option<u64> {
        self.registrations.iter().find(|r| &*r.port == port).map(|r| r.key)
    }

    /// Whether `port` holds the persistent reservation.
    pub fn holds(&self, port: &str) -> bool {
        match &self.reservation {
            Some(r) if all_registrants(r.kind) => self.key_of(port).is_some(),
            Some(r) => &*r.holder == port,
            None => false,
        }
    }

    /// Whether a command of `access` from `port` conflicts with the reservations.
    pub fn conflicts(&self, port: &str, command: &Command) -> bool {
        if self.legacy.as_deref().is_some_and(|holder| holder != port) && !legacy_allowed(command) {
            return true;
        }
        let Some(r) = &self.reservation else { return false };
        if self.holds(port) {
            return false;
        }
        let registered = self.key_of(port).is_some();
        match command.access() {
            Access::Free => false,
            Access::Read => exclusive_access(r.kind) && !(registrants_have_access(r.kind) && registered),
            Access::Write => !(registrants_have_access(r.kind) && registered),
        }
    }

    /// Applies a PERSISTENT RESERVE OUT from `port` (SPC-4 §5.13).
    pub fn apply(&mut self, port: &Arc<str>, req: Request) -> Verdict {
        let mine = self.key_of(port);
        match req.action {
            REGISTER | REGISTER_AND_IGNORE => {
                if req.action == REGISTER && mine.unwrap_or(0) != req.key {
                    return Verdict::Conflict;
                }
                match (mine, req.service_key) {
                    (None, 0) => return Verdict::Good,
                    (None, key) => self.registrations.push(Registration { port: port.clone(), key }),
                    (Some(_), 0) => self.unregister(port),
                    (Some(_), key) => {
                        for r in self.registrations.iter_mut().filter(|r| r.port == *port) {
                            r.key = key;
                        }
                    }
                }
                self.generation = self.generation.wrapping_add(1);
                Verdict::Good
            }
            _ if mine.is_none() || mine != Some(req.key) => Verdict::Conflict,
            RESERVE => match &self.reservation {
                None => {
                    self.reservation = Some(Reservation { holder: port.clone(), kind: req.kind });
                    Verdict::Good
                }
                Some(r) if self.holds(port) && r.kind == req.kind => Verdict::Good,
                Some(_) => Verdict::Conflict,
            },
            RELEASE => match &self.reservation {
                Some(r) if self.holds(port) => {
                    if r.kind != req.kind {
                        return Verdict::Check(Sense::INVALID_RELEASE);
                    }
                    self.reservation = None;
                    Verdict::Good
                }
                _ => Verdict::Good,
            },
            CLEAR => {
                self.registrations.clear();
                self.reservation = None;
                self.generation = self.generation.wrapping_add(1);
                Verdict::Good
            }
            PREEMPT | PREEMPT_AND_ABORT => self.preempt(port, req),
            _ => Verdict::Check(Sense::cdb_field(1, Some(4))),
        }
    }

    fn preempt(&mut self, port: &Arc<str>, req: Request) -> Verdict {
        let taking_over = match &self.reservation {
            Some(r) if all_registrants(r.kind) => req.service_key == 0,
            Some(r) => self.key_of(&r.holder) == Some(req.service_key),
            None => false,
        };
        if taking_over {
            // Everyone with the preempted key loses it (all others, for an all-registrants
            // reservation preempted with key 0); the reservation passes to `port`.
            let key = req.service_key;
            self.registrations.retain(|r| r.port == *port || (key != 0 && r.key != key));
            self.reservation = Some(Reservation { holder: port.clone(), kind: req.kind });
        } else {
            if req.service_key == 0 {
                return Verdict::Check(Sense::parameter_field(8, None));
            }
            let before = self.registrations.len();
            self.registrations.retain(|r| r.key != req.service_key);
            if self.registrations.len() == before {
                return Verdict::Conflict;
            }
            self.drop_orphaned_reservation();
        }
        self.generation = self.generation.wrapping_add(1);
        Verdict::Good
    }

    fn unregister(&mut self, port: &Arc<str>) {
        self.registrations.retain(|r| r.port != *port);
        self.drop_orphaned_reservation();
    }

    /// A reservation whose holder (or, for all-registrants types, every registrant) is no
    /// longer registered ends.
    fn drop_orphaned_reservation(&mut self) {
        let orphaned = match &self.reservation {
            Some(r) if all_registrants(r.kind) => self.registrations.is_empty(),
            Some(r) => self.key_of(&r.holder).is_none(),
            None => false,
        };
        if orphaned {
            self.reservation = None;
        }
    }

    /// RESERVE(6): conflicts with another nexus's SPC-2 reservation and with persistent
    /// reservations or registrations (SPC-4 §5.13.3).
    pub fn reserve6(&mut self, port: &Arc<str>) -> Verdict {
        if self.legacy.as_deref().is_some_and(|holder| holder != &**port) {
            return Verdict::Conflict;
        }
        if self.reservation.is_some() || !self.registrations.is_empty() {
            return Verdict::Conflict;
        }
        self.legacy = Some(port.clone());
        Verdict::Good
    }

    /// RELEASE(6): ends the nexus's own SPC-2 reservation; from anyone else a no-op.
    pub fn release6(&mut self, port: &Arc<str>) -> Verdict {
        if self.reservation.is_some() {
            return Verdict::Conflict;
        }
        if self.legacy.as_deref() == Some(&**port) {
            self.legacy = None;
        }
        Verdict::Good
    }
}

/// Commands another nexus's SPC-2 reservation never blocks.
fn legacy_allowed(command: &Command) -> bool {
    matches!(
        command,
        Command::Inquiry { .. }
            | Command::ReportLuns { .. }
            | Command::RequestSense { .. }
            | Command::ReportOpcodes { .. }
            | Command::Release6
    )
}

/// The reservations of one logical unit, shared by its sessions.
#[derive(Debug, Default)]
pub struct Reservations {
    state: Mutex<State>,
}

impl Reservations {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn conflicts(&self, nexus: &Nexus, command: &Command) -> bool {
        self.lock().conflicts(&nexus.port, command)
    }

    pub fn reserve6(&self, nexus: &Nexus) -> Outcome {
        verdict(self.lock().reserve6(&nexus.port))
    }

    pub fn release6(&self, nexus: &Nexus) -> Outcome {
        verdict(self.lock().release6(&nexus.port))
    }

    /// The nexus is gone (its session ended): its SPC-2 reservation ends with it.
    pub fn nexus_lost(&self, nexus: &Nexus) {
        let mut state = self.lock();
        if state.legacy.as_deref() == Some(&*nexus.port) {
            state.legacy = None;
        }
    }

    /// A logical unit reset ends SPC-2 reservations; persistent ones survive it.
    pub fn reset(&self) {
        self.lock().legacy = None;
    }
}

pub fn verdict(v: Verdict) -> Outcome {
    match v {
        Verdict::Good => Outcome::good(bytes::Bytes::new()),
        Verdict::Conflict => Outcome::conflict(),
        Verdict::Check(sense) => Outcome::check(sense),
    }
}

/// What a target's sessions share: its reservations and unit attentions.
#[derive(Debug, Default)]
pub struct Shared {
    pub reservations: Reservations,
    pub attentions: super::attention::Attentions,
}

/// Every target's shared state, by target name, for as long as the server runs.
#[derive(Debug, Default)]
pub struct Registry {
    targets: Mutex<HashMap<String, Arc<Shared>>>,
}

impl Registry {
    pub fn for_target(&self, target: &str) -> Arc<Shared> {
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        targets.entry(target.to_string()).or_default().clone()
    }
}

#[cfg(test)]
#[path = "reservations_tests.rs"]
mod tests;
