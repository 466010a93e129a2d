//! Encoded responses kept per catalog: the same question with the same options gets the same
//! bytes, so a repeated query costs a lookup and two small copies instead of a walk of the
//! zone and an encoding. The cache lives in the `Catalog`, which is replaced whole on every
//! change, so it can never serve data older than the zones it was built from.
//!
//! A hit takes the cached bytes, writes the query's id and the question's name as the query
//! spelled it (same length, other case): names in the response that point at the question
//! then read with that case too, as in a response made afresh.

use std::collections::HashMap;
use std::sync::RwLock;

use hickory_proto::rr::Name;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::respond::Outcome;

/// Entries kept at most; the cache starts over when full (a flood of distinct names must not
/// grow memory).
const CAPACITY: usize = 65_536;

/// Everything a response depends on besides the zones (the name compares without case).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub name: Name,
    pub qtype: u16,
    pub qclass: u16,
    /// EDNS present, with the DO bit.
    pub edns: Option<bool>,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    /// The size the response had to fit.
    pub limit: usize,
}

#[derive(Default)]
pub struct AnswerCache {
    entries: RwLock<HashMap<Key, (Vec<u8>, Outcome)>>,
}

impl std::fmt::Debug for AnswerCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnswerCache")
    }
}

impl AnswerCache {
    /// The cached response to `key`, with `id` and the question spelled as `name`.
    pub fn get(&self, key: &Key, id: u16, name: &Name) -> Option<(Vec<u8>, Outcome)> {
        let entries = self.entries.read().ok()?;
        let (bytes, outcome) = entries.get(key)?;
        let mut bytes = bytes.clone();
        let outcome = outcome.clone();
        drop(entries);
        let spelled = wire(name)?;
        // The question's name follows the 12-byte header, uncompressed, in every response.
        let end = 12 + spelled.len();
        if bytes.len() < end || !bytes[12..end].eq_ignore_ascii_case(&spelled) {
            return None;
        }
        bytes[..2].copy_from_slice(&id.to_be_bytes());
        bytes[12..end].copy_from_slice(&spelled);
        Some((bytes, outcome))
    }

    pub fn put(&self, key: Key, bytes: &[u8], outcome: &Outcome) {
        let Ok(mut entries) = self.entries.write() else { return };
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, (bytes.to_vec(), outcome.clone()));
    }
}

/// `name` in uncompressed wire form, its case kept.
fn wire(name: &Name) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(name.len() + 2);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    name.emit(&mut encoder).ok()?;
    Some(bytes)
}
