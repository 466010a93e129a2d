//! What the dataplane learns about each backend while it runs — connections in flight,
//! failures in a row, ejection — kept by backend key across plan rebuilds, so a change of
//! configuration neither forgets how busy a backend is nor forgives its failures.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use photon_resource::meta::now_ms;

use crate::model::backend::AdminState;
use crate::model::pool::PoolSpec;

use super::plan::BackendPlan;

#[derive(Debug)]
pub struct BackendStats {
    pub active: AtomicU64,
    failures: AtomicU32,
    ejected_until_ms: AtomicU64,
    /// The health checks failing now (a backend is healthy while none is; a new backend is
    /// healthy until its checks say otherwise).
    failing: Mutex<BTreeSet<String>>,
}

impl Default for BackendStats {
    fn default() -> Self {
        Self { active: AtomicU64::new(0), failures: AtomicU32::new(0), ejected_until_ms: AtomicU64::new(0), failing: Mutex::default() }
    }
}

impl BackendStats {
    /// Up for new traffic: healthy and not ejected (the admin state is the plan's).
    pub fn up(&self) -> bool {
        self.healthy() && self.ejected_until_ms.load(Ordering::Relaxed) <= now_ms()
    }

    /// The health checks failing now, by name.
    pub fn failing(&self) -> Vec<String> {
        self.failing.lock().map(|f| f.iter().cloned().collect()).unwrap_or_default()
    }

    /// Taken out by passive ejection until this long from now (ms), if it is.
    pub fn ejected_for_ms(&self) -> Option<u64> {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until.checked_sub(now_ms()).filter(|left| *left > 0)
    }

    pub fn healthy(&self) -> bool {
        self.failing.lock().map(|f| f.is_empty()).unwrap_or(true)
    }

    /// What health check `check` concluded.
    pub fn set_check(&self, check: &str, passing: bool) {
        if let Ok(mut failing) = self.failing.lock() {
            if passing {
                failing.remove(check);
            } else {
                failing.insert(check.to_string());
            }
        }
    }

    pub fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// A failed connection or request: after `pool.eject_after_failures` in a row the backend
    /// is out for `pool.ejection_ms`. Returns whether this failure ejected it.
    pub fn failed(&self, pool: &PoolSpec) -> bool {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if pool.eject_after_failures > 0 && n >= pool.eject_after_failures {
            self.failures.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(now_ms() + pool.ejection_ms, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// Counts one connection in flight for as long as it lives.
pub struct InFlight(Arc<BackendStats>);

impl InFlight {
    pub fn new(stats: Arc<BackendStats>) -> Self {
        stats.active.fetch_add(1, Ordering::Relaxed);
        Self(stats)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct Stats {
    backends: Mutex<HashMap<String, Arc<BackendStats>>>,
}

impl Stats {
    pub fn of(&self, key: &str) -> Arc<BackendStats> {
        let mut backends = match self.backends.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        backends.entry(key.to_string()).or_default().clone()
    }

    /// Forgets backends no longer configured (their connections keep their own handles).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        if let Ok(mut backends) = self.backends.lock() {
            backends.retain(|key, _| keep(key));
        }
    }

    /// Backends (configured and enabled) up and down now.
    pub fn census<'a>(&self, backends: impl Iterator<Item = &'a BackendPlan>) -> (u64, u64) {
        let (mut up, mut down) = (0, 0);
        for backend in backends.filter(|b| b.spec.admin_state != AdminState::Disabled) {
            if self.of(&backend.key).up() {
                up += 1;
            } else {
                down += 1;
            }
        }
        (up, down)
    }
}
