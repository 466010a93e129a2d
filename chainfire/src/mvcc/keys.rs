//! Chainfire's persistent format: every column family and key the MVCC store writes. Values
//! use photon-raft's versioned encoding (a format byte, then bincode).
//!
//! - `kv_latest`: user key → the live [`KeyValue`] (absent once deleted). Serves reads at the
//!   current revision.
//! - `kv_history`: `enc(key) ‖ rev ‖ sub` → [`Version`] (a put or a tombstone). Serves reads at
//!   past revisions and watch replay. `enc` escapes 0x00 as 0x00 0xFF and ends with 0x00 0x01,
//!   which keeps every key's versions contiguous and keys in byte order.
//! - `kv_events`: `rev ‖ sub` → user key. Revision order, for watch replay.
//! - `kv_meta`: `revision` and `compact_revision` (i64), `alarm_nospace` (bool), and
//!   `member/` ‖ id (u64 BE) → the client URLs that member published.
//! - `leases`: lease id (i64 BE) → [`super::model::Lease`].
//! - `lease_keys`: `lease id ‖ user key` → empty: the keys attached to each lease.
//!
//! Revisions and sub-revisions are non-negative i64s stored big-endian as u64, so they sort.

pub const CF_LATEST: &str = "kv_latest";
pub const CF_HISTORY: &str = "kv_history";
pub const CF_EVENTS: &str = "kv_events";
pub const CF_META: &str = "kv_meta";
pub const CF_LEASES: &str = "leases";
pub const CF_LEASE_KEYS: &str = "lease_keys";
pub const ALL_CFS: [&str; 6] = [CF_LATEST, CF_HISTORY, CF_EVENTS, CF_META, CF_LEASES, CF_LEASE_KEYS];

pub const META_REVISION: &[u8] = b"revision";
pub const META_COMPACT: &[u8] = b"compact_revision";
pub const META_NOSPACE: &[u8] = b"alarm_nospace";
/// The leader's last lease checkpoint: (lease id, milliseconds left) of every short lease.
pub const META_LEASE_CHECKPOINT: &[u8] = b"lease_checkpoint";

/// `kv_meta` key of a member's published client URLs: `member/` ‖ id (u64 BE).
pub fn member_key(id: u64) -> Vec<u8> {
    [b"member/".as_slice(), &id.to_be_bytes()].concat()
}

const ESCAPE: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;
const REV_SUFFIX: usize = 16;

/// Order-preserving, prefix-free encoding of a user key.
pub fn enc_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2);
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(ESCAPE);
        }
    }
    out.extend_from_slice(&[0, TERMINATOR]);
    out
}

/// Inverse of [`enc_key`]; `None` for bytes it did not produce.
pub fn dec_key(encoded: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut iter = encoded.iter().copied();
    while let Some(b) = iter.next() {
        if b != 0 {
            out.push(b);
            continue;
        }
        match iter.next()? {
            ESCAPE => out.push(0),
            TERMINATOR => return iter.next().is_none().then_some(out),
            _ => return None,
        }
    }
    None
}

pub fn rev_bytes(rev: i64, sub: i64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&(rev as u64).to_be_bytes());
    out[8..].copy_from_slice(&(sub as u64).to_be_bytes());
    out
}

pub fn parse_rev(bytes: &[u8]) -> Option<(i64, i64)> {
    let rev = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?) as i64;
    let sub = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?) as i64;
    Some((rev, sub))
}

pub fn lease_key(id: i64) -> [u8; 8] {
    (id as u64).to_be_bytes()
}

pub fn lease_key_entry(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = lease_key(id).to_vec();
    out.extend_from_slice(key);
    out
}

pub fn history_key(key: &[u8], rev: i64, sub: i64) -> Vec<u8> {
    let mut out = enc_key(key);
    out.extend_from_slice(&rev_bytes(rev, sub));
    out
}

/// Splits a `kv_history` key into the user key and its revision.
pub fn split_history_key(raw: &[u8]) -> Option<(Vec<u8>, i64, i64)> {
    let split = raw.len().checked_sub(REV_SUFFIX)?;
    let (rev, sub) = parse_rev(&raw[split..])?;
    Some((dec_key(&raw[..split])?, rev, sub))
}

/// Values use photon-raft's versioned encoding (a format byte, then bincode), so one decoder
/// policy covers the Raft log and the store.
pub use photon_raft::{decode, encode};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_encoding_round_trips_and_preserves_order() {
        let keys: Vec<&[u8]> =
            vec![b"", b"\x00", b"\x00\x00", b"\x00\x01", b"a", b"a\x00", b"a\x00b", b"a\x01", b"ab", b"b", b"\xff"];
        for k in &keys {
            assert_eq!(dec_key(&enc_key(k)).as_deref(), Some(*k));
        }
        for pair in keys.windows(2) {
            assert!(enc_key(pair[0]) < enc_key(pair[1]), "{:?} !< {:?}", pair[0], pair[1]);
            // Versions of the smaller key sort before the larger key's first version.
            assert!(history_key(pair[0], i64::MAX, i64::MAX) < history_key(pair[1], 0, 0));
        }
    }

    #[test]
    fn history_keys_split_back() {
        let raw = history_key(b"x\x00y", 42, 3);
        assert_eq!(split_history_key(&raw), Some((b"x\x00y".to_vec(), 42, 3)));
        assert!(history_key(b"k", 2, 0) < history_key(b"k", 10, 0));
    }
}
