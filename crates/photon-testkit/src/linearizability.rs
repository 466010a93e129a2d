//! A linearizability checker for histories of single-key register operations (read, write,
//! compare-and-swap), recorded by concurrent clients against a real cluster.
//!
//! Keys are independent registers, so each key's history is checked alone (P-compositionality).
//! The search is Wing & Gong's, with Lowe's memoization: repeatedly pick an operation that may
//! take effect next (invoked before every pending completed operation returned), apply it to
//! the model, and backtrack on a mismatch. An operation whose outcome the client never learned
//! (a timeout) may take effect at any point after its invocation, or never.

use std::collections::{BTreeMap, HashSet};

/// What a client asked, and what it was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read the key; `None` if absent.
    Read(Option<String>),
    Write(String),
    /// Set to `new` if the value is `expected`; whether it did.
    Cas {
        expected: String,
        new: String,
        succeeded: bool,
    },
}

/// One operation in a history. Times are any monotonic clock.
#[derive(Debug, Clone)]
pub struct Event {
    pub key: String,
    pub op: Op,
    pub invoked: u64,
    /// `None` when the outcome is unknown (the call timed out or the connection broke).
    pub returned: Option<u64>,
}

/// Why a history was not accepted.
#[derive(Debug)]
pub enum Violation {
    /// No valid linearization exists for this key's operations.
    NotLinearizable { key: String, events: Vec<Event> },
    /// The search gave up after [`MAX_STATES`] states on this key: too many concurrent or
    /// unknown-outcome operations to decide. Not a pass.
    Inconclusive { key: String, operations: usize },
}

/// The most search states explored per key before giving up.
pub const MAX_STATES: usize = 2_000_000;

/// Checks every key of `history`; the first key with no valid linearization is reported.
pub fn check(history: &[Event]) -> Result<(), Violation> {
    let mut by_key: BTreeMap<&str, Vec<Event>> = BTreeMap::new();
    for event in history {
        by_key.entry(&event.key).or_default().push(event.clone());
    }
    for (key, events) in by_key {
        match linearizable(&events) {
            Some(true) => {}
            Some(false) => return Err(Violation::NotLinearizable { key: key.to_string(), events }),
            None => return Err(Violation::Inconclusive { key: key.to_string(), operations: events.len() }),
        }
    }
    Ok(())
}

/// Applies `op` to a register holding `state`; `None` if the recorded result contradicts it.
fn step(state: &Option<String>, op: &Op, known: bool) -> Option<Option<String>> {
    match op {
        Op::Read(seen) => (!known || seen == state).then(|| state.clone()),
        Op::Write(value) => Some(Some(value.clone())),
        Op::Cas { expected, new, succeeded } => {
            let matches = state.as_deref() == Some(expected.as_str());
            match (known, matches, succeeded) {
                (false, true, _) => Some(Some(new.clone())),
                (false, false, _) => Some(state.clone()),
                (true, true, true) => Some(Some(new.clone())),
                (true, false, false) => Some(state.clone()),
                _ => None,
            }
        }
    }
}

/// `Some(answer)`, or `None` if the search exceeded its budget.
fn linearizable(events: &[Event]) -> Option<bool> {
    let mut search = Search { events, done: vec![0; events.len().div_ceil(64)], seen: HashSet::new() };
    search.run(None)
}

struct Search<'a> {
    events: &'a [Event],
    /// Bitset of the operations already placed in the linearization.
    done: Vec<u64>,
    seen: HashSet<(Vec<u64>, Option<String>)>,
}

impl Search<'_> {
    fn is_done(&self, i: usize) -> bool {
        self.done[i / 64] & (1 << (i % 64)) != 0
    }

    fn flip(&mut self, i: usize) {
        self.done[i / 64] ^= 1 << (i % 64);
    }

    fn run(&mut self, state: Option<String>) -> Option<bool> {
        let events = self.events;
        // Finished when every operation with a known outcome has taken effect.
        if (0..events.len()).all(|i| self.is_done(i) || events[i].returned.is_none()) {
            return Some(true);
        }
        if self.seen.len() >= MAX_STATES {
            return None;
        }
        if !self.seen.insert((self.done.clone(), state.clone())) {
            return Some(false);
        }
        // An operation may go next only if no pending operation returned before it was invoked.
        let horizon = (0..events.len())
            .filter(|&i| !self.is_done(i))
            .filter_map(|i| events[i].returned)
            .min()
            .unwrap_or(u64::MAX);
        for (i, event) in events.iter().enumerate() {
            if self.is_done(i) || event.invoked > horizon {
                continue;
            }
            if let Some(next) = step(&state, &event.op, event.returned.is_some()) {
                self.flip(i);
                let found = self.run(next);
                self.flip(i);
                if found != Some(false) {
                    return found;
                }
            }
        }
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(op: Op, invoked: u64, returned: Option<u64>) -> Event {
        Event { key: "k".into(), op, invoked, returned }
    }

    fn w(v: &str) -> Op {
        Op::Write(v.into())
    }

    fn r(v: Option<&str>) -> Op {
        Op::Read(v.map(str::to_string))
    }

    #[test]
    fn sequential_history_is_linearizable() {
        let h = [
            ev(w("a"), 0, Some(1)),
            ev(r(Some("a")), 2, Some(3)),
            ev(w("b"), 4, Some(5)),
            ev(r(Some("b")), 6, Some(7)),
        ];
        assert!(check(&h).is_ok());
    }

    #[test]
    fn a_stale_read_after_a_completed_write_is_not() {
        let h = [ev(w("a"), 0, Some(1)), ev(w("b"), 2, Some(3)), ev(r(Some("a")), 4, Some(5))];
        assert!(check(&h).is_err());
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        let h = [
            ev(w("a"), 0, Some(10)),
            ev(r(None), 1, Some(2)),
            ev(r(Some("a")), 3, Some(4)),
            ev(r(Some("a")), 11, Some(12)),
        ];
        assert!(check(&h).is_ok());
        let backwards = [ev(w("a"), 0, Some(10)), ev(r(Some("a")), 1, Some(2)), ev(r(None), 3, Some(4))];
        assert!(check(&backwards).is_err(), "once seen, a write cannot be unseen");
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_have_happened() {
        let applied = [ev(w("a"), 0, None), ev(r(Some("a")), 5, Some(6))];
        assert!(check(&applied).is_ok());
        let lost = [ev(w("a"), 0, None), ev(r(None), 5, Some(6))];
        assert!(check(&lost).is_ok());
        let contradiction = [ev(w("a"), 0, None), ev(r(Some("a")), 5, Some(6)), ev(r(None), 7, Some(8))];
        assert!(check(&contradiction).is_err());
    }

    #[test]
    fn compare_and_swap_results_must_match_the_value() {
        let cas = |e: &str, n: &str, ok| Op::Cas { expected: e.into(), new: n.into(), succeeded: ok };
        let good = [ev(w("a"), 0, Some(1)), ev(cas("a", "b", true), 2, Some(3)), ev(cas("a", "c", false), 4, Some(5))];
        assert!(check(&good).is_ok());
        let double_win =
            [ev(w("a"), 0, Some(1)), ev(cas("a", "b", true), 2, Some(3)), ev(cas("a", "c", true), 4, Some(5))];
        assert!(check(&double_win).is_err());
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut h = vec![ev(w("a"), 0, Some(1))];
        h.push(Event { key: "other".into(), op: r(Some("zzz")), invoked: 0, returned: Some(1) });
        match check(&h).unwrap_err() {
            Violation::NotLinearizable { key, .. } => assert_eq!(key, "other"),
            other => panic!("{other:?}"),
        }
    }
}

/// The shape every linearizability test's clients share: two keys, enough clients that some read
/// from a cut-off member while others write through the majority, short call deadlines (so
/// clients cycle through members during faults), and a pause after a failure.
pub mod workload {
    use std::time::Duration;

    use crate::seeded::Rng;

    pub const KEYS: [&str; 2] = ["x", "y"];
    pub const CLIENTS: u64 = 6;
    pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);
    /// Pause after a failed call, so a client does not flood a cluster that is electing.
    pub const BACKOFF: Duration = Duration::from_millis(250);

    /// `message` as a request with the call deadline.
    pub fn timed<T>(message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(CALL_TIMEOUT);
        request
    }

    /// Client `id`'s own random sequence for run `seed`.
    pub fn client_rng(seed: u64, id: u64) -> Rng {
        Rng(seed ^ (id + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}
