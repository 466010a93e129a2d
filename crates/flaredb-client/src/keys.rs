//! How namespaced keys map onto the one ordered key space that regions partition. Shared with
//! the server (which stores and splits by these keys) so client routing and server storage
//! can never disagree.
//!
//! Store key = `0x01 ‖ namespace ‖ 0x00 ‖ user key`. Namespace names match `[a-z0-9_-]{1,63}`,
//! so they never contain 0x00: a namespace's keys are contiguous and in user-key order. The
//! leading tag leaves room for other key families (SQL rows and indexes will take tag 0x02).

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
