//! FlareDB's persistent format: how namespaced keys map onto the one ordered key space that
//! regions partition, and how records are stored.
//!
//! - Store key = `0x01 ‖ namespace ‖ 0x00 ‖ user key`. Namespace names match
//!   `[a-z0-9_-]{1,63}`, so they never contain 0x00: a namespace's keys are contiguous and in
//!   user-key order. The leading tag leaves room for other key families (SQL rows and indexes
//!   will take tag 0x02) without touching this one.
//! - `data`: store key → [`StoredRecord`] (versioned bincode, `photon_raft::encode`).
//! - `ttl`: expiry (i64 BE, unix ms) ‖ store key → empty: keys with a TTL in expiry order, so
//!   the region leader finds expired keys without scanning the data.
//! - `regions`: region id (u64 BE) → [`crate::region::Descriptor`], written with the region's
//!   applied state so a split and the data it moves land together.

use serde::{Deserialize, Serialize};

pub const CF_DATA: &str = "data";
pub const CF_TTL: &str = "ttl";
pub const CF_REGIONS: &str = "regions";
pub const ALL_CFS: [&str; 3] = [CF_DATA, CF_TTL, CF_REGIONS];

const TAG_KV: u8 = 0x01;

/// Whether `name` can name a namespace.
pub fn valid_namespace(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The store key of `key` in namespace `namespace`.
pub fn store_key(namespace: &str, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + namespace.len() + key.len());
    out.push(TAG_KV);
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(key);
    out
}

/// The store key just past every key of `namespace`.
pub fn namespace_end(namespace: &str) -> Vec<u8> {
    let mut out = store_key(namespace, b"");
    if let Some(last) = out.last_mut() {
        *last = 1;
    }
    out
}

/// The user key inside `store_key`, if it belongs to `namespace`.
pub fn user_key<'a>(store_key: &'a [u8], namespace: &str) -> Option<&'a [u8]> {
    let prefix_len = namespace.len() + 2;
    let prefix = store_key.get(..prefix_len)?;
    (prefix[0] == TAG_KV && &prefix[1..prefix_len - 1] == namespace.as_bytes() && prefix[prefix_len - 1] == 0)
        .then(|| &store_key[prefix_len..])
}

/// The `ttl` index key of `store_key` expiring at `expires_at_ms`.
pub fn ttl_key(expires_at_ms: i64, store_key: &[u8]) -> Vec<u8> {
    [expires_at_ms.max(0).to_be_bytes().as_slice(), store_key].concat()
}

/// The expiry and store key inside a `ttl` index key.
pub fn split_ttl_key(ttl_key: &[u8]) -> Option<(i64, &[u8])> {
    let (expiry, key) = ttl_key.split_at_checked(8)?;
    Some((i64::from_be_bytes(expiry.try_into().ok()?), key))
}

/// What `data` holds per key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// 1 on creation, +1 on every write.
    pub version: u64,
    /// Unix milliseconds after which the key is gone; 0: never.
    pub expires_at_ms: i64,
    pub value: Vec<u8>,
}

impl StoredRecord {
    /// Whether the record still exists at `now_ms`.
    pub fn live_at(&self, now_ms: i64) -> bool {
        self.expires_at_ms == 0 || self.expires_at_ms > now_ms
    }
}

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_contiguous_and_ordered_by_user_key() {
        let (a, b, c) = (store_key("ns", b"a"), store_key("ns", b"b\xff"), store_key("ns2", b""));
        assert!(store_key("ns", b"") < a && a < b && b < namespace_end("ns") && namespace_end("ns") <= c);
        assert_eq!(user_key(&b, "ns"), Some(b"b\xff".as_slice()));
        assert_eq!(user_key(&c, "ns"), None);
        assert!(valid_namespace("tenant-1_meta") && !valid_namespace("") && !valid_namespace("Upper"));
    }
}
