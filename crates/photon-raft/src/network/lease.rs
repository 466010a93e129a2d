//! Leader leases: a leader that a quorum acknowledged recently serves linearizable reads
//! without a heartbeat round.
//!
//! Why it is safe (openraft 0.9): a follower that accepts an AppendEntries of the leader's vote
//! refuses every vote request for `election_timeout_max` afterwards, and does not stand for
//! election itself before `election_timeout_max + election_timeout_min`. So if a quorum of
//! voters accepted an AppendEntries that left the leader at time `t`, no other leader can exist
//! before `t + election_timeout_min`: the lease. The clock is the leader's own (`Instant`);
//! the margin is the whole difference between the minimum and maximum timeouts.
//!
//! Two things bypass the timers and are handled here: an explicit `trigger().elect()` (a
//! campaign asked for by an operator or placement) must first ask the leader to suspend its
//! lease ([`LeaseClock::suspend`]), and the leader itself granting a vote steps it down inside
//! openraft's core, where [`lease_read_index`] looks, so the check and the step-down are ordered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::{Raft, ServerState, Vote};

use crate::{App, NodeId, TypeConfig};

/// What one group's leader knows about acknowledgements of its vote.
#[derive(Default)]
pub struct LeaseClock {
    state: Mutex<LeaseState>,
}

#[derive(Default)]
struct LeaseState {
    /// Per peer: the vote it last accepted from this node, and when that AppendEntries left.
    acks: HashMap<NodeId, (Vote<NodeId>, Instant)>,
    suspended_until: Option<Instant>,
}

impl LeaseClock {
    /// Records that `peer` accepted `vote` in an AppendEntries sent at `sent`.
    pub(crate) fn acked(&self, peer: NodeId, vote: Vote<NodeId>, sent: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.acks.get(&peer) {
            Some((known, at)) if *known == vote && *at >= sent => {}
            _ => {
                state.acks.insert(peer, (vote, sent));
            }
        }
    }

    /// Stops lease reads for `period`: the next reads confirm leadership with a quorum round.
    pub fn suspend(&self, period: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.suspended_until = Some(Instant::now() + period);
    }

    /// Whether `me`, leading with `vote`, holds a lease of `length` now in every configuration
    /// of `configs` (two during a joint membership change).
    fn holds(&self, me: NodeId, vote: &Vote<NodeId>, configs: &[Vec<NodeId>], length: Duration) -> bool {
        let now = Instant::now();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.suspended_until.is_some_and(|until| now < until) {
            return false;
        }
        configs.iter().all(|voters| {
            let mut times: Vec<Instant> = voters
                .iter()
                .filter_map(|id| {
                    if *id == me {
                        return Some(now);
                    }
                    state.acks.get(id).filter(|(v, _)| v == vote).map(|(_, at)| *at)
                })
                .collect();
            let quorum = voters.len() / 2 + 1;
            if times.len() < quorum {
                return false;
            }
            times.sort_unstable_by(|a, b| b.cmp(a));
            now.duration_since(times[quorum - 1]) < length
        })
    }
}

/// The index a linearizable read on this member must have applied, when it leads under a
/// valid lease; `None` when it must confirm leadership the slow way (not the leader, no lease,
/// or nothing of its own term committed yet, so earlier terms' entries may still be pending).
pub(crate) async fn lease_read_index<A: App>(raft: &Raft<TypeConfig<A>>, clock: Arc<LeaseClock>) -> Option<u64> {
    let config = raft.config();
    let length = Duration::from_millis(config.election_timeout_min);
    let me = raft.metrics().borrow().id;
    // Evaluated inside openraft's core, ordered with vote handling: a leader that granted a
    // vote (and so stepped down) is seen as a follower here.
    raft.with_raft_state(move |st| {
        let vote = st.vote_ref();
        if st.server_state != ServerState::Leader || !vote.is_committed() || vote.leader_id().voted_for() != Some(me) {
            return None;
        }
        let committed = st.committed.as_ref()?;
        if committed.leader_id != *vote.leader_id() {
            return None;
        }
        let configs = st.membership_state.effective().get_joint_config();
        clock.holds(me, vote, configs, length).then_some(committed.index)
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(term: u64, node: NodeId) -> Vote<NodeId> {
        Vote::new_committed(term, node)
    }

    #[test]
    fn a_quorum_of_recent_acks_of_this_vote_holds_the_lease() {
        let clock = LeaseClock::default();
        let configs = vec![vec![1, 2, 3]];
        let length = Duration::from_millis(500);
        assert!(!clock.holds(1, &vote(2, 1), &configs, length), "no acks yet");
        clock.acked(2, vote(1, 1), Instant::now());
        assert!(!clock.holds(1, &vote(2, 1), &configs, length), "an ack of an older vote");
        clock.acked(3, vote(2, 1), Instant::now() - Duration::from_millis(600));
        assert!(!clock.holds(1, &vote(2, 1), &configs, length), "an ack older than the lease");
        clock.acked(2, vote(2, 1), Instant::now());
        assert!(clock.holds(1, &vote(2, 1), &configs, length));
        clock.suspend(Duration::from_secs(5));
        assert!(!clock.holds(1, &vote(2, 1), &configs, length), "suspended for a campaign");
    }

    #[test]
    fn a_joint_configuration_needs_a_quorum_of_each() {
        let clock = LeaseClock::default();
        let length = Duration::from_millis(500);
        clock.acked(2, vote(2, 1), Instant::now());
        assert!(clock.holds(1, &vote(2, 1), &[vec![1, 2, 3]], length));
        assert!(!clock.holds(1, &vote(2, 1), &[vec![1, 2, 3], vec![1, 4, 5]], length));
        clock.acked(4, vote(2, 1), Instant::now());
        assert!(clock.holds(1, &vote(2, 1), &[vec![1, 2, 3], vec![1, 4, 5]], length));
        assert!(!clock.holds(1, &vote(2, 1), &[vec![2, 3, 4, 5, 6]], length), "the leader outside the voters");
    }
}
