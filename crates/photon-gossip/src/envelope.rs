//! The authenticated envelope every gossip packet travels in: a magic, the sender's clock, an
//! HMAC-SHA256 tag over both and the payload, keyed with the cluster's gossip key. A packet from
//! anyone without the key (a stranger joining, a forged "node is dead") is dropped before foca
//! sees it; the clock bounds how long a captured packet can be replayed.

use ring::hmac;

/// Identifies the format; a packet of another version is dropped, not misread.
const MAGIC: &[u8; 4] = b"PCG1";
const CLOCK_LEN: usize = 8;
const TAG_LEN: usize = 32;
/// Bytes the envelope adds to a payload.
pub const OVERHEAD: usize = MAGIC.len() + CLOCK_LEN + TAG_LEN;

/// Why a packet was dropped (logged at debug: a stranger can send anything).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("not a PhotonCloud gossip packet")]
    NotOurs,
    #[error("bad authentication tag (wrong gossip key?)")]
    BadTag,
    #[error("sent {skew_ms} ms away from this node's clock (more than the replay window)")]
    Stale { skew_ms: i64 },
}

/// Seals and opens packets with one cluster key.
pub struct Envelope {
    key: hmac::Key,
    window_ms: i64,
}

impl Envelope {
    /// `window_ms`: how far a packet's clock may be from ours (clock skew plus replay window).
    pub fn new(key: &[u8], window_ms: i64) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, key), window_ms }
    }

    /// `payload` wrapped for the wire, stamped with `now_ms`.
    pub fn seal(&self, payload: &[u8], now_ms: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(OVERHEAD + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&now_ms.to_be_bytes());
        let tag = self.tag(&out, payload);
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(payload);
        out
    }

    /// The payload of an authentic, fresh packet.
    pub fn open<'a>(&self, packet: &'a [u8], now_ms: i64) -> Result<&'a [u8], Rejected> {
        if packet.len() < OVERHEAD || &packet[..MAGIC.len()] != MAGIC {
            return Err(Rejected::NotOurs);
        }
        let (head, rest) = packet.split_at(MAGIC.len() + CLOCK_LEN);
        let (tag, payload) = rest.split_at(TAG_LEN);
        let mut signed = Vec::with_capacity(head.len() + payload.len());
        signed.extend_from_slice(head);
        signed.extend_from_slice(payload);
        hmac::verify(&self.key, &signed, tag).map_err(|_| Rejected::BadTag)?;
        let mut clock = [0u8; CLOCK_LEN];
        clock.copy_from_slice(&head[MAGIC.len()..]);
        let skew_ms = now_ms - i64::from_be_bytes(clock);
        if skew_ms.abs() > self.window_ms {
            return Err(Rejected::Stale { skew_ms });
        }
        Ok(payload)
    }

    fn tag(&self, head: &[u8], payload: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(head);
        context.update(payload);
        context.sign()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_packet_opens_with_the_same_key_only() {
        let ours = Envelope::new(b"cluster key", 60_000);
        let packet = ours.seal(b"hello", 1_000);
        assert_eq!(ours.open(&packet, 1_500), Ok(&b"hello"[..]));
        let stranger = Envelope::new(b"another key", 60_000);
        assert_eq!(stranger.open(&packet, 1_500), Err(Rejected::BadTag));
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let envelope = Envelope::new(b"k", 60_000);
        let mut packet = envelope.seal(b"member 3 is down", 0);
        let last = packet.len() - 1;
        packet[last] ^= 1;
        assert_eq!(envelope.open(&packet, 0), Err(Rejected::BadTag));
        // The clock is signed too: moving it forward breaks the tag.
        let mut moved = envelope.seal(b"x", 0);
        moved[11] ^= 1;
        assert_eq!(envelope.open(&moved, 0), Err(Rejected::BadTag));
        assert_eq!(envelope.open(b"short", 0), Err(Rejected::NotOurs));
        assert_eq!(envelope.open(&[0u8; 100], 0), Err(Rejected::NotOurs));
    }

    #[test]
    fn old_packets_are_not_replayed() {
        let envelope = Envelope::new(b"k", 30_000);
        let packet = envelope.seal(b"x", 0);
        assert!(envelope.open(&packet, 29_000).is_ok());
        assert_eq!(envelope.open(&packet, 31_000), Err(Rejected::Stale { skew_ms: 31_000 }));
    }
}
