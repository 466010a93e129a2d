//! DNSSEC online signing (RFC 4033-4035): a zone's keys (`keys`: ECDSA P-256 or Ed25519, kept
//! sealed under the node's DNSSEC master key), and signing a built zone (`sign`): an RRSIG for
//! every authoritative RRset by every active key, the NSEC chain, reused from a cache while
//! the data is unchanged and the signature has more than half its life left. The proofs that
//! go into answers are the DNS engine's (`dns::signed`).

pub mod keys;
pub mod manage;
pub mod sign;

pub use keys::{Keyring, StoredKey};
pub use sign::{sign_zone, SignatureCache};
