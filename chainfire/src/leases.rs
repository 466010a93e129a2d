//! Lease expiry. Leases themselves (id, TTL, attached keys) are replicated state; their
//! deadlines are not: the leader keeps them in memory, keep-alives refresh them without a Raft
//! write, and the leader proposes a revoke when one passes. A member that becomes leader gives
//! a lease a full TTL from that moment, as etcd does, so a leader change never makes a lease
//! expire early — except a short lease (`CHECKPOINT_TTL` or less: the ones held for fast
//! failover, such as a load balancer's address): the leader checkpoints what those have left
//! through Raft every `CHECKPOINT_EVERY`, and a new leader carries on their countdown from
//! when it saw the last checkpoint (at least `TAKEOVER_GRACE` away, for a keep-alive that was
//! on its way). A holder that dies together with the leader then loses its lease about a TTL
//! after its last keep-alive, not an election plus a TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use photon_raft::openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::error::ChainfireError;
use crate::mvcc::model::Command;
use crate::node::Node;

/// How often the leader looks for expired leases.
const TICK: Duration = Duration::from_millis(200);
/// etcd's largest TTL.
pub const MAX_TTL: i64 = 9_000_000_000;
/// Leases this short (seconds) are checkpointed.
const CHECKPOINT_TTL: i64 = 10;
/// How often the leader checkpoints them: two small Raft entries a second while any exists.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The least a new leader leaves a checkpointed lease.
const TAKEOVER_GRACE: Duration = Duration::from_millis(500);

#[derive(Clone, Default)]
pub struct LeaseKeeper {
    deadlines: Arc<Mutex<HashMap<i64, Instant>>>,
}

fn is_leader(node: &Node) -> bool {
    node.raft.metrics().borrow().state == ServerState::Leader
}

impl LeaseKeeper {
    fn deadlines(&self) -> MutexGuard<'_, HashMap<i64, Instant>> {
        self.deadlines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refreshes lease `id` for another TTL; `Ok(0)` if it no longer exists (etcd's answer).
    pub fn keep_alive(&self, node: &Node, id: i64) -> Result<i64, ChainfireError> {
        if !is_leader(node) {
            return Err(ChainfireError::NoLeader);
        }
        match node.read(|reader| Ok(reader.lease(id)?))? {
            Some(lease) => {
                self.deadlines().insert(id, Instant::now() + Duration::from_secs(lease.ttl as u64));
                Ok(lease.ttl)
            }
            None => Ok(0),
        }
    }

    /// Seconds lease `id` has left, by this leader's clock (its full TTL if not yet tracked).
    pub fn remaining(&self, id: i64, ttl: i64) -> i64 {
        match self.deadlines().get(&id) {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()).as_secs_f64().ceil() as i64,
            None => ttl,
        }
    }

    /// Starts tracking a lease granted through this member.
    pub fn granted(&self, id: i64, ttl: i64) {
        self.deadlines().insert(id, Instant::now() + Duration::from_secs(ttl as u64));
    }

    /// The expiry loop: runs on every member, acts only while this member leads; a follower
    /// notes when it saw each lease checkpoint, for the day it leads.
    pub async fn run(self, node: Node, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        let mut checkpoint = Checkpoint::default();
        let mut leading = false;
        let mut checkpointed = Instant::now();
        while !shutdown.is_cancelled() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !is_leader(&node) {
                self.deadlines().clear();
                leading = false;
                checkpoint.follow(&node);
                continue;
            }
            let took_over = !leading;
            leading = true;
            let leases = match node.read(|reader| Ok(reader.leases()?)) {
                Ok(leases) => leases,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list leases");
                    continue;
                }
            };
            let now = Instant::now();
            let expired: Vec<i64> = {
                let mut deadlines = self.deadlines();
                deadlines.retain(|id, _| leases.iter().any(|l| l.id == *id));
                for lease in &leases {
                    let full = now + Duration::from_secs(lease.ttl as u64);
                    let carried = took_over.then(|| checkpoint.deadline(lease.id)).flatten();
                    let deadline = carried.map_or(full, |d| d.max(now + TAKEOVER_GRACE).min(full));
                    deadlines.entry(lease.id).or_insert(deadline);
                }
                deadlines.iter().filter(|(_, deadline)| **deadline <= now).map(|(id, _)| *id).collect()
            };
            if took_over {
                tracing::info!(leases = leases.len(), "leading: lease deadlines taken over");
            }
            for id in expired {
                match node.apply(Command::LeaseRevoke { id }).await {
                    Ok(_) => {
                        tracing::info!(lease = id, "lease expired and was revoked");
                        self.deadlines().remove(&id);
                    }
                    Err(ChainfireError::Mvcc(crate::mvcc::model::MvccError::LeaseNotFound)) => {
                        self.deadlines().remove(&id);
                    }
                    Err(e) => {
                        tracing::warn!(lease = id, error = %e, "revoking an expired lease failed; will retry")
                    }
                }
            }
            if checkpointed.elapsed() >= CHECKPOINT_EVERY {
                checkpointed = Instant::now();
                self.checkpoint(&node, &leases).await;
            }
        }
    }

    /// Proposes what the short leases have left, if there are any.
    async fn checkpoint(&self, node: &Node, leases: &[crate::mvcc::model::Lease]) {
        let now = Instant::now();
        let remaining_ms: Vec<(i64, u64)> = {
            let deadlines = self.deadlines();
            leases
                .iter()
                .filter(|l| l.ttl <= CHECKPOINT_TTL)
                .filter_map(|l| deadlines.get(&l.id).map(|d| (l.id, d.saturating_duration_since(now).as_millis() as u64)))
                .collect()
        };
        if remaining_ms.is_empty() {
            return;
        }
        if let Err(e) = node.apply(Command::LeaseCheckpoint { remaining_ms }).await {
            tracing::debug!(error = %e, "lease checkpoint not written; the next one will be");
        }
    }
}

/// The last lease checkpoint a follower has seen, and when it first saw it.
#[derive(Default)]
struct Checkpoint {
    remaining_ms: Vec<(i64, u64)>,
    seen: Option<Instant>,
}

impl Checkpoint {
    fn follow(&mut self, node: &Node) {
        match node.read(|reader| Ok(reader.lease_checkpoint()?)) {
            Ok(latest) if latest != self.remaining_ms || self.seen.is_none() => {
                self.remaining_ms = latest;
                self.seen = Some(Instant::now());
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read the lease checkpoint"),
        }
    }

    /// When lease `id` runs out by the last checkpoint (`None`: not in it).
    fn deadline(&self, id: i64) -> Option<Instant> {
        let seen = self.seen?;
        self.remaining_ms.iter().find(|(lease, _)| *lease == id).map(|(_, ms)| seen + Duration::from_millis(*ms))
    }
}
