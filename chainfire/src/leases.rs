//! Lease expiry. Leases themselves (id, TTL, attached keys) are replicated state; their
//! deadlines are not: the leader keeps them in memory, keep-alives refresh them without a Raft
//! write, and the leader proposes a revoke when one passes. A member that becomes leader gives
//! every lease a full TTL from that moment, as etcd does, so a leader change can delay expiry
//! but never makes a lease expire early.

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

    /// The expiry loop: runs on every member, acts only while this member leads.
    pub async fn run(self, node: Node, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        while !shutdown.is_cancelled() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !is_leader(&node) {
                self.deadlines().clear();
                continue;
            }
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
                    deadlines.entry(lease.id).or_insert(now + Duration::from_secs(lease.ttl as u64));
                }
                deadlines.iter().filter(|(_, deadline)| **deadline <= now).map(|(id, _)| *id).collect()
            };
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
        }
    }
}
