//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size in
//! which every backend takes its turn claiming its next preferred slot, so each gets an equal
//! share, and removing one moves only the keys that were on it (and a few more). A backend that
//! is not eligible is skipped by walking on to the next slot, so keys of healthy backends stay
//! where they were.

use std::hash::{Hash, Hasher};

/// Slots in the table: a prime well above 100 times the backends a pool has.
const SIZE: usize = 65_537;

pub struct Table {
    slots: Vec<u32>,
}

fn hash_with(name: &str, seed: u64) -> u64 {
    // FNV-1a with a seed: stable across processes and nodes, so every fiberlb node builds the
    // same table and a client lands on the same backend whichever node it reaches.
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl Table {
    pub fn new(names: &[String]) -> Self {
        let n = names.len();
        let m = SIZE as u64;
        let prefs: Vec<(u64, u64)> = names
            .iter()
            .map(|name| (hash_with(name, 0x9e37_79b9) % m, hash_with(name, 0x85eb_ca6b) % (m - 1) + 1))
            .collect();
        let mut next = vec![0u64; n];
        let mut slots = vec![u32::MAX; SIZE];
        let mut filled = 0;
        'fill: loop {
            for i in 0..n {
                let (offset, skip) = prefs[i];
                let mut slot = ((offset + next[i] * skip) % m) as usize;
                while slots[slot] != u32::MAX {
                    next[i] += 1;
                    slot = ((offset + next[i] * skip) % m) as usize;
                }
                slots[slot] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == SIZE {
                    break 'fill;
                }
            }
        }
        Self { slots }
    }

    /// The backend for `key`: its slot's, or the next eligible one after it.
    pub fn lookup(&self, key: u64, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let start = (key % SIZE as u64) as usize;
        (0..SIZE).map(|i| self.slots[(start + i) % SIZE] as usize).find(|&b| eligible(b))
    }
}

/// A key's hash for Maglev (a client address, a header's value).
pub fn key_of(value: impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}
