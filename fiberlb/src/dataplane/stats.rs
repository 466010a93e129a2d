//! What the dataplane learns about each backend while it runs — connections in flight,
//! failures in a row, ejection — kept by backend key across plan rebuilds, so a change of
//! configuration neither forgets how busy a backend is nor forgives its failures.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
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
    /// `failing` is empty: read per request without the lock.
    healthy: AtomicBool,
    /// When it last came back (its checks passing again, or an ejection ending): slow start
    /// ramps its weight from then (0: never down).
    back_since_ms: AtomicU64,
}

impl Default for BackendStats {
    fn default() -> Self {
        Self { active: AtomicU64::new(0), failures: AtomicU32::new(0), ejected_until_ms: AtomicU64::new(0), failing: Mutex::default(), healthy: AtomicBool::new(true), back_since_ms: AtomicU64::new(0) }
    }
}

impl BackendStats {
    /// Up for new traffic: healthy and not ejected (the admin state is the plan's).
    pub fn up(&self) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        self.healthy() && (until == 0 || until <= now_ms())
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
        self.healthy.load(Ordering::Relaxed)
    }

    /// What health check `check` concluded.
    pub fn set_check(&self, check: &str, passing: bool) {
        if let Ok(mut failing) = self.failing.lock() {
            if passing {
                if failing.remove(check) && failing.is_empty() {
                    self.back_since_ms.store(now_ms(), Ordering::Relaxed);
                }
            } else {
                failing.insert(check.to_string());
            }
            self.healthy.store(failing.is_empty(), Ordering::Relaxed);
        }
    }

    /// `weight` as slow start allows it now: from a tenth up to all of it over `slow_start_ms`
    /// after the backend came back (at least 1).
    pub fn ramped(&self, weight: u32, slow_start_ms: u64) -> u32 {
        let back = self.back_since_ms.load(Ordering::Relaxed);
        if slow_start_ms == 0 || back == 0 {
            return weight;
        }
        let now = now_ms();
        if now >= back + slow_start_ms {
            return weight;
        }
        let elapsed = now.saturating_sub(back);
        let share = (elapsed as f64 / slow_start_ms as f64).max(0.1);
        ((f64::from(weight) * share).round() as u32).max(1)
    }

    pub fn succeeded(&self) {
        // Read first: a store on every request would bounce the line between cores.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// A failed connection or request: after `pool.eject_after_failures` in a row the backend
    /// is out for `pool.ejection_ms`. Returns whether this failure ejected it.
    pub fn failed(&self, pool: &PoolSpec) -> bool {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if pool.eject_after_failures > 0 && n >= pool.eject_after_failures {
            self.failures.store(0, Ordering::Relaxed);
            let until = now_ms() + pool.ejection_ms;
            self.ejected_until_ms.store(until, Ordering::Relaxed);
            self.back_since_ms.store(until, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_ramps_a_returning_backends_weight() {
        let stats = BackendStats::default();
        assert_eq!(stats.ramped(100, 10_000), 100, "never down: full weight");
        stats.set_check("http", false);
        stats.set_check("http", true);
        let just_back = stats.ramped(100, 10_000);
        assert!((10..=12).contains(&just_back), "a tenth at first: {just_back}");
        assert_eq!(stats.ramped(100, 0), 100, "no slow start");
        stats.back_since_ms.store(now_ms() - 5_000, Ordering::Relaxed);
        let half = stats.ramped(100, 10_000);
        assert!((48..=52).contains(&half), "half way: {half}");
        stats.back_since_ms.store(now_ms() - 20_000, Ordering::Relaxed);
        assert_eq!(stats.ramped(100, 10_000), 100);
        assert_eq!(stats.ramped(1, 10_000), 1, "never below 1");
    }
}
