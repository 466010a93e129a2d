//! Persistent reservation rules, event by event: registration, each reservation type's
//! access for holders, registrants and others, release, clear, preempt, and SPC-2 RESERVE.

use super::*;

fn port(name: &str) -> Arc<str> {
    name.into()
}

fn req(action: u8, kind: u8, key: u64, service_key: u64) -> Request {
    Request { action, kind, key, service_key }
}

const READ: Command = Command::Read { lba: 0, blocks: 1 };
const WRITE: Command = Command::Write { lba: 0, blocks: 1, fua: false };
const INQUIRY: Command = Command::Inquiry { evpd: false, page: 0, alloc: 36 };

/// `a` and `b` registered with keys 1 and 2; `a` reserves with `kind`.
fn reserved(kind: u8) -> (State, Arc<str>, Arc<str>) {
    let (a, b) = (port("a"), port("b"));
    let mut s = State::default();
    assert_eq!(s.apply(&a, req(REGISTER, 0, 0, 1)), Verdict::Good);
    assert_eq!(s.apply(&b, req(REGISTER_AND_IGNORE, 0, 99, 2)), Verdict::Good);
    assert_eq!(s.apply(&a, req(RESERVE, kind, 1, 0)), Verdict::Good);
    (s, a, b)
}

#[test]
fn registration_needs_the_current_key() {
    let a = port("a");
    let mut s = State::default();
    assert_eq!(s.apply(&a, req(REGISTER, 0, 5, 1)), Verdict::Conflict, "unregistered with a key");
    assert_eq!(s.apply(&a, req(REGISTER, 0, 0, 0)), Verdict::Good);
    assert_eq!(s.generation, 0, "registering key 0 changes nothing");
    assert_eq!(s.apply(&a, req(REGISTER, 0, 0, 1)), Verdict::Good);
    assert_eq!(s.apply(&a, req(REGISTER, 0, 7, 8)), Verdict::Conflict, "wrong current key");
    assert_eq!(s.apply(&a, req(REGISTER, 0, 1, 8)), Verdict::Good);
    assert_eq!(s.registrations, vec![Registration { port: a.clone(), key: 8 }]);
    assert_eq!(s.apply(&a, req(REGISTER_AND_IGNORE, 0, 0, 0)), Verdict::Good);
    assert!(s.registrations.is_empty());
    assert_eq!(s.generation, 3);
}

#[test]
fn each_type_decides_who_may_read_and_write() {
    // (type, registered other reads, writes; unregistered other reads, writes)
    let table = [
        (WRITE_EXCLUSIVE, true, false, true, false),
        (EXCLUSIVE_ACCESS, false, false, false, false),
        (WRITE_EXCLUSIVE_REGISTRANTS_ONLY, true, true, true, false),
        (EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, true, true, false, false),
        (WRITE_EXCLUSIVE_ALL_REGISTRANTS, true, true, true, false),
        (EXCLUSIVE_ACCESS_ALL_REGISTRANTS, true, true, false, false),
    ];
    for (kind, reg_read, reg_write, other_read, other_write) in table {
        let (s, a, b) = reserved(kind);
        assert!(!s.conflicts(&a, &READ) && !s.conflicts(&a, &WRITE), "the holder, type {kind}");
        assert_eq!((!s.conflicts(&b, &READ), !s.conflicts(&b, &WRITE)), (reg_read, reg_write), "type {kind}");
        assert_eq!((!s.conflicts("c", &READ), !s.conflicts("c", &WRITE)), (other_read, other_write), "type {kind}");
        assert!(!s.conflicts("c", &INQUIRY));
    }
}

#[test]
fn reserve_and_release_follow_the_holder_and_type() {
    let (mut s, a, b) = reserved(WRITE_EXCLUSIVE);
    assert_eq!(s.apply(&a, req(RESERVE, WRITE_EXCLUSIVE, 1, 0)), Verdict::Good, "again, same type");
    assert_eq!(s.apply(&a, req(RESERVE, EXCLUSIVE_ACCESS, 1, 0)), Verdict::Conflict, "another type");
    assert_eq!(s.apply(&b, req(RESERVE, WRITE_EXCLUSIVE, 2, 0)), Verdict::Conflict, "held by another");
    assert_eq!(s.apply(&b, req(RELEASE, WRITE_EXCLUSIVE, 2, 0)), Verdict::Good, "a non-holder's release does nothing");
    assert!(s.reservation.is_some());
    assert_eq!(s.apply(&a, req(RELEASE, EXCLUSIVE_ACCESS, 1, 0)), Verdict::Check(Sense::INVALID_RELEASE));
    assert_eq!(s.apply(&a, req(RELEASE, WRITE_EXCLUSIVE, 1, 0)), Verdict::Good);
    assert!(s.reservation.is_none());
    assert_eq!(s.apply(&port("c"), req(RESERVE, WRITE_EXCLUSIVE, 0, 0)), Verdict::Conflict, "unregistered");
}

#[test]
fn unregistering_the_holder_ends_the_reservation_unless_all_registrants_hold_it() {
    let (mut s, a, b) = reserved(EXCLUSIVE_ACCESS);
    assert_eq!(s.apply(&a, req(REGISTER, 0, 1, 0)), Verdict::Good);
    assert!(s.reservation.is_none());
    let (mut s, a, b2) = reserved(EXCLUSIVE_ACCESS_ALL_REGISTRANTS);
    assert_eq!(s.apply(&a, req(REGISTER, 0, 1, 0)), Verdict::Good);
    assert!(s.holds(&b2) && s.reservation.is_some(), "b still holds it");
    assert_eq!(s.apply(&b2, req(REGISTER, 0, 2, 0)), Verdict::Good);
    assert!(s.reservation.is_none(), "the last registrant left");
    let _ = b;
}

#[test]
fn preempt_takes_over_or_removes_registrations() {
    let (mut s, a, b) = reserved(WRITE_EXCLUSIVE);
    let generation = s.generation;
    assert_eq!(s.apply(&b, req(PREEMPT, EXCLUSIVE_ACCESS, 2, 1)), Verdict::Good);
    assert_eq!(s.reservation, Some(Reservation { holder: b.clone(), kind: EXCLUSIVE_ACCESS }));
    assert_eq!(s.registrations, vec![Registration { port: b.clone(), key: 2 }]);
    assert_eq!(s.generation, generation + 1);
    assert!(s.conflicts(&a, &READ), "a was preempted");
    // Without a reservation, preempting removes the named registrations only.
    let mut s = State::default();
    s.apply(&a, req(REGISTER, 0, 0, 1));
    s.apply(&b, req(REGISTER, 0, 0, 2));
    assert_eq!(s.apply(&b, req(PREEMPT, EXCLUSIVE_ACCESS, 2, 1)), Verdict::Good);
    assert_eq!(s.registrations.len(), 1);
    assert!(s.reservation.is_none());
    assert_eq!(s.apply(&b, req(PREEMPT, EXCLUSIVE_ACCESS, 2, 77)), Verdict::Conflict, "no such key");
    assert_eq!(s.apply(&b, req(PREEMPT, EXCLUSIVE_ACCESS, 2, 0)), Verdict::Check(Sense::parameter_field(8, None)));
    // An all-registrants reservation preempted with key 0 passes to the preempting nexus alone.
    let (mut s, a, b) = reserved(WRITE_EXCLUSIVE_ALL_REGISTRANTS);
    assert_eq!(s.apply(&b, req(PREEMPT, WRITE_EXCLUSIVE, 2, 0)), Verdict::Good);
    assert_eq!(s.registrations.len(), 1);
    assert!(s.holds(&b) && !s.holds(&a));
}

#[test]
fn clear_removes_everything() {
    let (mut s, a, b) = reserved(EXCLUSIVE_ACCESS);
    assert_eq!(s.apply(&b, req(CLEAR, 0, 9, 0)), Verdict::Conflict, "with the wrong key");
    assert_eq!(s.apply(&b, req(CLEAR, 0, 2, 0)), Verdict::Good);
    assert!(s.registrations.is_empty() && s.reservation.is_none());
    assert!(!s.conflicts(&a, &WRITE));
}

#[test]
fn spc2_reservations_exclude_other_nexuses_and_persistent_ones() {
    let (a, b) = (port("a"), port("b"));
    let mut s = State::default();
    assert_eq!(s.reserve6(&a), Verdict::Good);
    assert_eq!(s.reserve6(&a), Verdict::Good, "again by the holder");
    assert!(s.conflicts(&b, &Command::Reserve6));
    assert!(s.conflicts(&b, &READ) && !s.conflicts(&b, &INQUIRY) && !s.conflicts(&b, &Command::Release6));
    assert_eq!(s.release6(&b), Verdict::Good);
    assert_eq!(s.legacy.as_deref(), Some("a"), "another's release is a no-op");
    assert_eq!(s.release6(&a), Verdict::Good);
    assert_eq!(s.apply(&b, req(REGISTER, 0, 0, 5)), Verdict::Good);
    assert_eq!(s.reserve6(&a), Verdict::Conflict, "registrations exist");
}

#[test]
fn the_registry_shares_state_per_target() {
    let registry = Registry::default();
    let a = registry.for_target("t1");
    assert!(Arc::ptr_eq(&a, &registry.for_target("t1")));
    assert!(!Arc::ptr_eq(&a, &registry.for_target("t2")));
}
