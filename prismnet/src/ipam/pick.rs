//! Picking a free value from a range: pure, so the choice is tested apart from the store.
//!
//! Random, not lowest-first: creates racing in one subnet then rarely pick the same address,
//! so the claim that settles a race (photon-resource's `assign`) is seldom needed twice.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// How many random tries before walking the range from a random start.
const RANDOM_TRIES: u32 = 16;

/// A value of `lo..=hi` not in `taken`, chosen from `seed`; `None` when all are taken.
pub fn pick(lo: u32, hi: u32, taken: &HashSet<u32>, mut seed: u64) -> Option<u32> {
    if lo > hi {
        return None;
    }
    let span = u64::from(hi - lo) + 1;
    for _ in 0..RANDOM_TRIES {
        seed = next(seed);
        let candidate = lo + (seed % span) as u32;
        if !taken.contains(&candidate) {
            return Some(candidate);
        }
    }
    if taken.len() as u64 >= span && (lo..=hi).all(|v| taken.contains(&v)) {
        return None;
    }
    let start = (next(seed) % span) as u32;
    (0..span).map(|i| lo + ((u64::from(start) + i) % span) as u32).find(|v| !taken.contains(v))
}

/// The host addresses of `cidr` (without its network and broadcast addresses).
pub fn hosts(cidr: Ipv4Net) -> (u32, u32) {
    let (network, broadcast) = (u32::from(cidr.network()), u32::from(cidr.broadcast()));
    if cidr.prefix_len() >= 31 {
        return (network, broadcast);
    }
    (network + 1, broadcast - 1)
}

/// A free host address of `cidr`, none of `taken`.
pub fn pick_address(cidr: Ipv4Net, taken: &HashSet<Ipv4Addr>, seed: u64) -> Option<Ipv4Addr> {
    let (lo, hi) = hosts(cidr);
    let taken: HashSet<u32> = taken.iter().map(|a| u32::from(*a)).collect();
    pick(lo, hi, &taken, seed).map(Ipv4Addr::from)
}

/// splitmix64: a well-spread sequence from any seed.
fn next(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_free_value_is_found_and_none_when_all_are_taken() {
        let mut taken = HashSet::new();
        for seed in 0..254u64 {
            let v = pick(1, 254, &taken, seed).expect("a free value remains");
            assert!((1..=254).contains(&v));
            assert!(taken.insert(v), "{v} handed out twice");
        }
        assert_eq!(pick(1, 254, &taken, 7), None);
        assert_eq!(pick(5, 4, &HashSet::new(), 0), None);
    }

    #[test]
    fn addresses_skip_network_broadcast_and_taken_ones() {
        let cidr: Ipv4Net = "10.0.0.0/29".parse().unwrap();
        let mut taken: HashSet<Ipv4Addr> = ["10.0.0.1".parse().unwrap()].into();
        let mut got = Vec::new();
        for seed in 0..5 {
            let ip = pick_address(cidr, &taken, seed).expect("free");
            taken.insert(ip);
            got.push(ip);
        }
        got.sort();
        let want: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
        assert_eq!(got, want);
        assert_eq!(pick_address(cidr, &taken, 9), None);
    }

    #[test]
    fn a_large_range_is_not_walked() {
        let taken = HashSet::new();
        let v = pick(4096, 16_000_000, &taken, 42).expect("free");
        assert!((4096..=16_000_000).contains(&v));
    }
}
