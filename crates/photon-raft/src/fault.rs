//! Fault injection for tests: drop or delay a node's Raft messages to chosen peers, or cut the
//! node off entirely. Each node has its own injector; both its outgoing calls and the calls it
//! receives consult it, so an isolated node neither hears nor is heard. Production code never
//! sets a fault, and an unset injector costs one uncontended lock per message.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::NodeId;

#[derive(Debug, Default)]
struct Faults {
    isolated: bool,
    blocked: HashSet<NodeId>,
    delayed: HashMap<NodeId, Duration>,
}

/// Shared handle to one node's faults.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector(Arc<Mutex<Faults>>);

/// What the transport does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    DeliverAfter(Duration),
    Drop,
}

impl FaultInjector {
    fn faults(&self) -> MutexGuard<'_, Faults> {
        // A panic while holding this lock cannot leave the sets half-updated; keep going.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Cuts this node off from every peer, both ways.
    pub fn isolate(&self) {
        self.faults().isolated = true;
    }

    /// Drops messages between this node and `peer`, both ways.
    pub fn block(&self, peer: NodeId) {
        self.faults().blocked.insert(peer);
    }

    /// Delays this node's messages to `peer`.
    pub fn delay(&self, peer: NodeId, by: Duration) {
        self.faults().delayed.insert(peer, by);
    }

    /// Removes every fault.
    pub fn heal(&self) {
        *self.faults() = Faults::default();
    }

    /// The verdict for a message between this node and `peer` (either direction).
    pub fn verdict(&self, peer: NodeId) -> Verdict {
        let faults = self.faults();
        if faults.isolated || faults.blocked.contains(&peer) {
            return Verdict::Drop;
        }
        match faults.delayed.get(&peer) {
            Some(by) => Verdict::DeliverAfter(*by),
            None => Verdict::Deliver,
        }
    }
}

/// Tests only: `POST /debug/fault/isolate` and `/debug/fault/heal` on a service's HTTP port, so
/// tests can cut a running process's Raft traffic off and restore it. Services mount this only
/// when `raft.fault_injection` is set.
pub fn debug_routes(fault: FaultInjector) -> axum::Router {
    use axum::routing::post;
    axum::Router::new()
        .route(
            "/debug/fault/isolate",
            post(|axum::extract::State(fault): axum::extract::State<FaultInjector>| async move {
                tracing::warn!("fault injection: isolating this process's Raft traffic");
                fault.isolate();
                axum::Json(serde_json::json!({ "isolated": true }))
            }),
        )
        .route(
            "/debug/fault/heal",
            post(|axum::extract::State(fault): axum::extract::State<FaultInjector>| async move {
                tracing::warn!("fault injection: healing this process's Raft traffic");
                fault.heal();
                axum::Json(serde_json::json!({ "isolated": false }))
            }),
        )
        .with_state(fault)
}
