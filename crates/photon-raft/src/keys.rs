//! The persistent format: every column family and key this crate writes, and how values are
//! encoded. Values carry a format version byte first so a later release can read this one.
//!
//! - `raft_log`: `group (u64 BE) ‖ index (u64 BE)` → encoded `Entry`.
//! - `raft_meta`: `group (u64 BE) ‖ item tag (u8)` → encoded vote, committed log id, last
//!   purged log id, last applied log id, stored membership, current snapshot meta, and the
//!   progress through a batch entry whose commands are not all applied yet (log id, count).
//!
//! Big-endian integers keep a group's keys contiguous and its log in index order.

use serde::{Deserialize, Serialize};

pub const CF_LOG: &str = "raft_log";
pub const CF_META: &str = "raft_meta";

/// Version byte in front of every value. Bump it, and keep a decoder for the old one, when an
/// encoding changes.
pub const FORMAT_V1: u8 = 1;

#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub enum Meta {
    Vote = 1,
    Committed = 2,
    LastPurged = 3,
    Applied = 4,
    Membership = 5,
    Snapshot = 6,
    PartialApply = 7,
}

pub fn log_key(group: u64, index: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&group.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

pub fn log_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(8..16)?.try_into().ok()?))
}

pub fn group_prefix(group: u64) -> [u8; 8] {
    group.to_be_bytes()
}

pub fn meta_key(group: u64, item: Meta) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[..8].copy_from_slice(&group.to_be_bytes());
    key[8] = item as u8;
    key
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::Error> {
    let mut out = vec![FORMAT_V1];
    bincode::serialize_into(&mut out, value)?;
    Ok(out)
}

/// A value `encode` wrote; `T` may borrow from `bytes` (a scan reads values in place).
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, bincode::Error> {
    match bytes.split_first() {
        Some((&FORMAT_V1, rest)) => bincode::deserialize(rest),
        Some((version, _)) => Err(Box::new(bincode::ErrorKind::Custom(format!("unknown format version {version}")))),
        None => Err(Box::new(bincode::ErrorKind::Custom("empty value".into()))),
    }
}
