//! Unit attention conditions (SAM-5 §5.14): news a logical unit owes each I_T nexus, reported
//! once as CHECK CONDITION / UNIT ATTENTION on its next command (except INQUIRY, REPORT LUNS
//! and REQUEST SENSE, which REQUEST SENSE reports and clears). Raised for every nexus with a
//! session to the target when a LUN RESET happens.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use super::sense::{Sense, UNIT_ATTENTION};

/// BUS DEVICE RESET FUNCTION OCCURRED.
pub const RESET_OCCURRED: Sense = Sense::new(UNIT_ATTENTION, 0x29, 0x03);
/// Conditions a nexus may have queued at once; older ones give way (SAM-5 lets a device
/// server drop all but the most recent when it runs out of room).
const MAX_QUEUED: usize = 8;

#[derive(Debug, Default)]
pub struct Attentions {
    /// Each nexus with a session, and its pending conditions.
    pending: Mutex<HashMap<Arc<str>, VecDeque<Sense>>>,
}

impl Attentions {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, VecDeque<Sense>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A nexus opened a session: it is told about conditions raised from now on.
    pub fn joined(&self, port: &Arc<str>) {
        self.lock().entry(port.clone()).or_default();
    }

    /// A nexus closed its session: nothing more is kept for it.
    pub fn left(&self, port: &str) {
        self.lock().remove(port);
    }

    /// Raises `sense` for every nexus with a session.
    pub fn raise_all(&self, sense: Sense) {
        for queue in self.lock().values_mut() {
            if queue.len() == MAX_QUEUED {
                queue.pop_front();
            }
            queue.push_back(sense);
        }
    }

    /// The oldest condition pending for `port`, now reported.
    pub fn take(&self, port: &str) -> Option<Sense> {
        self.lock().get_mut(port).and_then(VecDeque::pop_front)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_reach_joined_nexuses_once_each() {
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        let ua = Attentions::default();
        ua.joined(&a);
        ua.raise_all(RESET_OCCURRED);
        ua.joined(&b);
        assert_eq!(ua.take("a"), Some(RESET_OCCURRED));
        assert_eq!(ua.take("a"), None);
        assert_eq!(ua.take("b"), None, "joined after the reset");
        for _ in 0..20 {
            ua.raise_all(RESET_OCCURRED);
        }
        assert_eq!(std::iter::from_fn(|| ua.take("b")).count(), MAX_QUEUED);
        ua.left("b");
        ua.raise_all(RESET_OCCURRED);
        assert_eq!(ua.take("b"), None);
    }
}
