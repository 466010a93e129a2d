//! Response rate limiting for UDP (after BIND's and Knot's RRL): a flood of responses toward
//! one network for one kind of answer — the signature of a reflection attack, whose "client"
//! is a spoofed victim — is cut to `responses_per_sec`; of the responses over the limit every
//! `slip`-th goes out truncated (TC, no records), so a real client behind that network retries
//! over TCP, which cannot be spoofed, and the rest are dropped.
//!
//! State is a fixed table of counters indexed by a hash of (client network, rcode, zone): no
//! allocation per client, and a collision only makes two keys share one budget.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType};
use ipnet::IpNet;

use crate::dns::Outcome;

const SLOTS: usize = 1 << 16;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send a truncated copy instead (TC set, no records).
    Slip,
    Drop,
}

pub struct RateLimiter {
    per_sec: u32,
    slip: u32,
    exempt: Vec<IpNet>,
    /// Each slot: the second it counts (high 32 bits) and the responses in it (low 32 bits).
    slots: Vec<AtomicU64>,
    hasher: std::collections::hash_map::RandomState,
}

impl RateLimiter {
    /// `per_sec` 0 turns limiting off.
    pub fn new(per_sec: u32, slip: u32, exempt: Vec<IpNet>) -> Self {
        let slots = if per_sec == 0 { Vec::new() } else { (0..SLOTS).map(|_| AtomicU64::new(0)).collect() };
        Self { per_sec, slip, exempt, slots, hasher: Default::default() }
    }

    /// The kind of answer `outcome` is, as responses are counted (its rcode and zone): found
    /// once per answer made and kept with it.
    pub fn class(&self, outcome: &Outcome) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        u16::from(outcome.rcode).hash(&mut hasher);
        outcome.zone.hash(&mut hasher);
        hasher.finish()
    }

    /// Whether a response of `class` (from `class`) goes to `client`.
    pub fn verdict(&self, client: IpAddr, class: u64) -> Verdict {
        if self.per_sec == 0 || self.exempt.iter().any(|net| net.contains(&client)) {
            return Verdict::Send;
        }
        let mut hasher = self.hasher.build_hasher();
        network_of(client).hash(&mut hasher);
        class.hash(&mut hasher);
        let slot = &self.slots[(hasher.finish() as usize) % SLOTS];
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(0);
        let mut current = slot.load(Ordering::Relaxed);
        let count = loop {
            let (second, count) = ((current >> 32) as u32, current as u32);
            let count = if second == now { count.saturating_add(1) } else { 1 };
            let next = (u64::from(now) << 32) | u64::from(count);
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break count,
                Err(seen) => current = seen,
            }
        };
        if count <= self.per_sec {
            Verdict::Send
        } else if self.slip > 0 && (count - self.per_sec).is_multiple_of(self.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// The network a client is counted by: its /24 (IPv4) or /56 (IPv6), as Knot does.
fn network_of(client: IpAddr) -> IpNet {
    let prefix = if client.is_ipv4() { 24 } else { 56 };
    IpNet::new(client, prefix).map(|net| net.trunc()).unwrap_or_else(|_| IpNet::from(client))
}

/// The truncated copy of a response: its header and question, TC set, nothing else.
pub fn truncated(response: &[u8]) -> Option<Vec<u8>> {
    let full = Message::from_vec(response).ok()?;
    let mut slipped = Message::new(full.metadata.id, MessageType::Response, full.metadata.op_code);
    slipped.metadata = full.metadata;
    slipped.metadata.truncation = true;
    slipped.queries = full.queries;
    slipped.edns = full.edns;
    slipped.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::ResponseCode;

    use super::*;

    fn outcome() -> Outcome {
        Outcome { rcode: ResponseCode::NXDomain, zone: "victim.test.".parse().ok(), truncated: false }
    }

    #[test]
    fn a_flood_toward_one_network_is_cut_and_slips_every_second_response() {
        let limiter = RateLimiter::new(5, 2, Vec::new());
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let class = limiter.class(&outcome());
        let verdicts: Vec<Verdict> = (0..11).map(|_| limiter.verdict(client, class)).collect();
        // Within one second (the test is far quicker), 5 go out, then slip/drop alternate.
        let sent = verdicts.iter().filter(|v| **v == Verdict::Send).count();
        if sent == 5 {
            assert_eq!(&verdicts[5..], &[Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]);
        }
        // Another network has its own budget; exempt networks none at all.
        assert_eq!(limiter.verdict("203.0.113.1".parse().unwrap(), class), Verdict::Send);
        let open = RateLimiter::new(1, 0, vec!["127.0.0.0/8".parse().unwrap()]);
        for _ in 0..10 {
            assert_eq!(open.verdict("127.0.0.1".parse().unwrap(), open.class(&outcome())), Verdict::Send);
        }
        let off = RateLimiter::new(0, 2, Vec::new());
        assert_eq!(off.verdict(client, off.class(&outcome())), Verdict::Send);
    }
}
