//! Responses already made, found by the query's own bytes before anything decodes them: the
//! same bytes (the id aside, the question's name compared without case) asked of the same
//! catalog get the same response, so a repeated query costs a hash, a lookup and a copy into
//! the caller's buffer — no decoding, no allocation, no walk of the zone.
//!
//! Why bytes and not a decoded question: decoding a query with hickory costs more than the
//! whole answer from here, and bytes leave nothing out by accident — any difference (EDNS
//! size, DO, RD, CD, an option) is a different key. Only queries of the plain shape are kept:
//! one question whose name is plain labels, then nothing but an OPT record (owner the root,
//! options without names). Its name is the only part compared without case, and with no
//! compressed name anywhere, nothing else can read the id or the name's bytes (a pointer into
//! the header or into a label would make the case or the id change how the query decodes:
//! the fuzzer found that).
//!
//! A hit writes the query's id and the question's name as the query spelled it (same length,
//! other case) into the copy: names in the response compressed against the question then read
//! with that case too, as in a response made afresh.
//!
//! Entries carry the catalog generation they were made from and count only against that
//! generation, so a change can never be answered from an older copy. The table is split in
//! shards, each behind its own lock, so the UDP threads rarely meet.

use std::hash::BuildHasher;
use std::sync::Mutex;

use hashbrown::HashTable;
use prometheus_client::metrics::counter::Counter;

use crate::dns::Transport;

/// Entries kept at most; a full shard starts over (a flood of distinct names must not grow
/// memory).
const CAPACITY: usize = 65_536;
const SHARDS: usize = 32;
/// Longer queries are answered but not kept: real questions are far shorter.
const MAX_KEY: usize = 512;
/// The header's length: the question's name starts here.
const HEADER: usize = 12;

/// What a cached response needs besides its bytes: its counter, its rate-limit class.
#[derive(Clone, Debug)]
pub struct Tally {
    /// The response counter of its zone, rcode and transport.
    pub counter: Counter,
    pub truncated: bool,
    /// What response rate limiting counts it as (`RateLimiter::class`).
    pub class: u64,
}

struct Entry {
    generation: u64,
    key: Box<[u8]>,
    response: Box<[u8]>,
    tally: Tally,
}

pub struct AnswerCache {
    shards: Vec<Mutex<HashTable<Entry>>>,
    hasher: std::hash::RandomState,
}

impl Default for AnswerCache {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(), hasher: Default::default() }
    }
}

/// A query's key: the transport, then its bytes after the id with the question's name in
/// lower case; and where the name ends in the query (and in the response).
struct Key {
    bytes: [u8; MAX_KEY],
    len: usize,
    name_end: usize,
}

impl Key {
    fn of(query: &[u8], transport: Transport) -> Option<Key> {
        if query.len() < HEADER + 1 || query.len() - 1 > MAX_KEY {
            return None;
        }
        let name_end = plain_shape(query)?;
        let mut key = Key { bytes: [0; MAX_KEY], len: query.len() - 1, name_end };
        key.bytes[0] = match transport {
            Transport::Udp => 0,
            Transport::Stream => 1,
        };
        key.bytes[1..key.len].copy_from_slice(&query[2..]);
        key.bytes[HEADER - 1..name_end - 1].make_ascii_lowercase();
        Some(key)
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Where the question's name ends, if `query` has the plain shape: one question, its name
/// plain labels, and then at most an OPT record (RFC 6891 §6.1.2) filling the rest exactly.
fn plain_shape(query: &[u8]) -> Option<usize> {
    let count = |at: usize| u16::from_be_bytes([query[at], query[at + 1]]);
    let additional = count(10);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || additional > 1 {
        return None;
    }
    let mut at = HEADER;
    let name_end = loop {
        let len = *query.get(at)? as usize;
        if len == 0 {
            break at + 1;
        }
        if len > 63 {
            return None;
        }
        at += 1 + len;
    };
    // The question's type and class.
    let rest = query.get(name_end + 4..)?;
    let plain = match (additional, rest) {
        (0, []) => true,
        // Root owner, TYPE 41, class (payload size) and TTL (flags) any, then the options.
        (1, [0, 0, 41, _, _, _, _, _, _, len_hi, len_lo, options @ ..]) => {
            usize::from(u16::from_be_bytes([*len_hi, *len_lo])) == options.len()
        }
        _ => false,
    };
    plain.then_some(name_end)
}

impl AnswerCache {
    /// If `query` was answered from catalog `generation`, calls `hit` with the response (the
    /// query's id and spelling written in) and its tally.
    pub fn hit<R>(
        &self,
        generation: u64,
        query: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
        hit: impl FnOnce(&mut Vec<u8>, &Tally) -> R,
    ) -> Option<R> {
        let key = Key::of(query, transport)?;
        let hash = self.hasher.hash_one(key.as_slice());
        let shard = self.shards[(hash as usize) % SHARDS].lock().ok()?;
        let entry = shard.find(hash, |e| e.generation == generation && *e.key == *key.as_slice())?;
        out.clear();
        out.extend_from_slice(&entry.response);
        // The key matched, so the response's question is the query's name in another case.
        out[..2].copy_from_slice(&query[..2]);
        out[HEADER..key.name_end].copy_from_slice(&query[HEADER..key.name_end]);
        Some(hit(out, &entry.tally))
    }

    /// Keeps `response` to `query`, made from catalog `generation`.
    pub fn put(&self, generation: u64, query: &[u8], transport: Transport, response: &[u8], tally: Tally) {
        let Some(key) = Key::of(query, transport) else { return };
        // The response must carry the question where the query had it, or a hit could not
        // spell it (errors may drop the question).
        if response.len() < key.name_end || !response[HEADER..key.name_end].eq_ignore_ascii_case(&query[HEADER..key.name_end]) {
            return;
        }
        let hash = self.hasher.hash_one(key.as_slice());
        let Ok(mut shard) = self.shards[(hash as usize) % SHARDS].lock() else { return };
        if shard.len() >= CAPACITY / SHARDS {
            shard.clear();
        }
        let entry = Entry { generation, key: key.as_slice().into(), response: response.into(), tally };
        match shard.find_mut(hash, |e| *e.key == *entry.key) {
            Some(old) => *old = entry,
            None => {
                let hasher = &self.hasher;
                shard.insert_unique(hash, entry, |e| hasher.hash_one(&*e.key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` (wire labels) of type A, id `id`.
    fn query(id: u16, name: &[u8]) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(name);
        q.extend_from_slice(&[0, 1, 0, 1]);
        q
    }

    /// `query` with an OPT record of payload size 1232 and the DO bit.
    fn with_opt(mut query: Vec<u8>) -> Vec<u8> {
        query[11] = 1;
        query.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        query
    }

    fn tally() -> Tally {
        Tally { counter: Counter::default(), truncated: false, class: 7 }
    }

    #[test]
    fn a_hit_takes_the_querys_id_and_spelling_and_only_from_its_generation() {
        let cache = AnswerCache::default();
        let asked = query(1, b"\x03www\x07example\x00");
        let mut response = asked.clone();
        response[2] |= 0x80;
        response.extend_from_slice(b"answer");
        cache.put(5, &asked, Transport::Udp, &response, tally());

        let again = query(0xbeef, b"\x03WwW\x07examPLE\x00");
        let mut out = Vec::new();
        let class = cache.hit(5, &again, Transport::Udp, &mut out, |_, t| t.class);
        assert_eq!(class, Some(7));
        assert_eq!(&out[..2], &[0xbe, 0xef]);
        assert_eq!(&out[12..25], b"\x03WwW\x07examPLE\x00");
        assert!(out.ends_with(b"answer"));

        // Another generation, transport, name or type is a miss.
        assert!(cache.hit(6, &again, Transport::Udp, &mut out, |_, _| ()).is_none());
        assert!(cache.hit(5, &again, Transport::Stream, &mut out, |_, _| ()).is_none());
        assert!(cache.hit(5, &query(1, b"\x03www\x07example\x01x\x00"), Transport::Udp, &mut out, |_, _| ()).is_none());
        let mut aaaa = again.clone();
        aaaa[26] = 28;
        assert!(cache.hit(5, &aaaa, Transport::Udp, &mut out, |_, _| ()).is_none());
    }

    #[test]
    fn names_that_are_not_plain_labels_and_responses_without_the_question_are_not_kept() {
        let cache = AnswerCache::default();
        let compressed = query(1, b"\xc0\x0c");
        cache.put(1, &compressed, Transport::Udp, &compressed, tally());
        assert!(cache.hit(1, &compressed, Transport::Udp, &mut Vec::new(), |_, _| ()).is_none());
        let asked = query(1, b"\x01a\x00");
        cache.put(1, &asked, Transport::Udp, &asked[..12], tally());
        assert!(cache.hit(1, &asked, Transport::Udp, &mut Vec::new(), |_, _| ()).is_none());
        // Truncated and empty queries are no keys at all.
        assert!(Key::of(&asked[..14], Transport::Udp).is_none());
        assert!(Key::of(&[], Transport::Udp).is_none());
        // An OPT record is the plain shape; anything else after the question is not (here a
        // name compressed against the question, which could read its case).
        let opt = with_opt(asked.clone());
        assert!(Key::of(&opt, Transport::Udp).is_some());
        let mut short = opt.clone();
        short.pop();
        assert!(Key::of(&short, Transport::Udp).is_none());
        let mut pointer = asked.clone();
        pointer[11] = 1;
        pointer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);
        assert!(Key::of(&pointer, Transport::Udp).is_none());
        let mut two = asked.clone();
        two[5] = 2;
        assert!(Key::of(&two, Transport::Udp).is_none());
    }
}
