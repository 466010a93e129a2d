//! FlareDB's persistent format: how namespaced keys map onto the one ordered key space that
//! regions partition, and how records are stored.
//!
//! - Store keys: `flaredb_client::keys` (shared with the client, which routes by them).
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

pub use flaredb_client::keys::{namespace_end, store_key, user_key, valid_namespace};

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
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// Whether a record expiring at `expires_at_ms` (0: never) still exists at `now_ms`: the one
/// expiry rule, for whole records, records read in place and record heads alike.
pub fn live_at(expires_at_ms: i64, now_ms: i64) -> bool {
    expires_at_ms == 0 || expires_at_ms > now_ms
}

impl StoredRecord {
    /// Whether the record still exists at `now_ms`.
    pub fn live_at(&self, now_ms: i64) -> bool {
        live_at(self.expires_at_ms, now_ms)
    }
}

/// A `StoredRecord` read in place: a scan copies each value once, into its answer.
#[derive(Debug, Deserialize)]
pub struct StoredRecordRef<'a> {
    pub version: u64,
    pub expires_at_ms: i64,
    #[serde(borrow)]
    pub value: &'a [u8],
}

impl StoredRecordRef<'_> {
    pub fn live_at(&self, now_ms: i64) -> bool {
        live_at(self.expires_at_ms, now_ms)
    }
}

/// Milliseconds since the Unix epoch on this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
