//! Choosing a backend for a new connection or request: round robin, smooth weighted round
//! robin, least connections, power of two random choices and Maglev consistent hashing, over
//! the backends that may take traffic now. Pure: the caller says which are eligible and how
//! busy each is.

pub mod maglev;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::model::pool::Algorithm;

/// What the balancer sees of one backend.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// Relative share (weighted algorithms); already scaled by slow start.
    pub weight: u32,
    /// Connections (L4) or requests (L7) in flight.
    pub active: u64,
    /// Up, enabled and not ejected.
    pub eligible: bool,
}

/// One pool's balancing state (counters, the Maglev table), rebuilt when its backends change.
pub struct Balancer {
    algorithm: Algorithm,
    next: AtomicU64,
    /// Smooth weighted round robin's current weights (nginx's algorithm).
    current: Mutex<Vec<i64>>,
    maglev: Option<maglev::Table>,
    random: AtomicU64,
}

impl Balancer {
    /// For `algorithm` over backends named `names` (their order is the candidates' order).
    pub fn new(algorithm: Algorithm, names: &[String]) -> Self {
        let maglev = (algorithm == Algorithm::Maglev && !names.is_empty()).then(|| maglev::Table::new(names));
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Self {
            algorithm,
            next: AtomicU64::new(0),
            current: Mutex::new(vec![0; names.len()]),
            maglev,
            random: AtomicU64::new(seed | 1),
        }
    }

    /// The index of the backend to use, or `None` if none is eligible. `hash` is the request's
    /// key for Maglev (source address or a header).
    pub fn pick(&self, candidates: &[Candidate], hash: Option<u64>) -> Option<usize> {
        if !candidates.iter().any(|c| c.eligible) {
            return None;
        }
        match self.algorithm {
            Algorithm::RoundRobin => self.round_robin(candidates),
            Algorithm::WeightedRoundRobin => self.weighted(candidates),
            Algorithm::LeastConnections => least(candidates, candidates.iter().enumerate().filter(|(_, c)| c.eligible).map(|(i, _)| i)),
            Algorithm::PowerOfTwo => {
                let eligible: Vec<usize> = candidates.iter().enumerate().filter(|(_, c)| c.eligible).map(|(i, _)| i).collect();
                let a = eligible[(self.random() % eligible.len() as u64) as usize];
                let b = eligible[(self.random() % eligible.len() as u64) as usize];
                least(candidates, [a, b].into_iter())
            }
            Algorithm::Maglev => {
                let table = self.maglev.as_ref()?;
                table.lookup(hash.unwrap_or_else(|| self.random()), |i| candidates.get(i).is_some_and(|c| c.eligible))
            }
        }
    }

    fn round_robin(&self, candidates: &[Candidate]) -> Option<usize> {
        let n = candidates.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        (0..n).map(|i| (start + i) % n).find(|&i| candidates[i].eligible)
    }

    /// Smooth weighted round robin: each pick adds every eligible backend's weight to its
    /// current value and takes the largest, which then gives back the total: weights 5,1,1
    /// give a a b a c a a, spread rather than bunched.
    fn weighted(&self, candidates: &[Candidate]) -> Option<usize> {
        let mut current = self.current.lock().ok()?;
        if current.len() != candidates.len() {
            *current = vec![0; candidates.len()];
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, c) in candidates.iter().enumerate() {
            if !c.eligible || c.weight == 0 {
                continue;
            }
            current[i] += i64::from(c.weight);
            total += i64::from(c.weight);
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let chosen = best?;
        current[chosen] -= total;
        Some(chosen)
    }

    /// xorshift64*: fast, good enough to spread load, not for secrets.
    fn random(&self) -> u64 {
        let mut x = self.random.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Of `indices`, the one with the fewest in flight relative to its weight (ties: the first).
fn least(candidates: &[Candidate], indices: impl Iterator<Item = usize>) -> Option<usize> {
    indices.min_by(|&a, &b| {
        let (ca, cb) = (&candidates[a], &candidates[b]);
        // active/weight compared without division: a.active * b.weight vs b.active * a.weight.
        (u128::from(ca.active) * u128::from(cb.weight.max(1))).cmp(&(u128::from(cb.active) * u128::from(ca.weight.max(1))))
    })
}

#[cfg(test)]
mod tests;
