//! YCSB's scrambled zipfian key chooser: ranks drawn from a zipfian distribution (Gray et al.,
//! "Quickly generating billion-record synthetic databases"; YCSB's default constant 0.99),
//! then hashed over the key space so the popular keys are spread out rather than adjacent.

/// YCSB's default skew.
pub const THETA: f64 = 0.99;

pub struct Zipf {
    n: u64,
    theta: f64,
    zetan: f64,
    alpha: f64,
    eta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipf {
    /// Keys `0..n` (`n` > 0).
    pub fn new(n: u64) -> Self {
        let theta = THETA;
        let zetan = zeta(n, theta);
        let zeta2 = zeta(2, theta);
        let eta = (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Self { n, theta, zetan, alpha: 1.0 / (1.0 - theta), eta }
    }

    /// The next key for a uniform `u` in [0, 1).
    pub fn key(&self, u: f64) -> u64 {
        let uz = u * self.zetan;
        let rank = if uz < 1.0 {
            0
        } else if uz < 1.0 + 0.5f64.powf(self.theta) {
            1
        } else {
            ((self.n as f64) * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64
        };
        fnv1a(rank.min(self.n - 1)) % self.n
    }
}

fn fnv1a(value: u64) -> u64 {
    value.to_le_bytes().iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    #[test]
    fn popular_keys_dominate_but_all_are_reachable() {
        let zipf = super::Zipf::new(1000);
        let mut counts = vec![0u32; 1000];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            counts[zipf.key((state >> 11) as f64 / (1u64 << 53) as f64) as usize] += 1;
        }
        let mut sorted = counts.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let top10: u32 = sorted[..10].iter().sum();
        assert!(top10 > 20_000, "the 10 hottest keys take a large share: {top10}");
        assert!(counts.iter().filter(|c| **c > 0).count() > 500, "most keys are touched");
    }
}
