//! FlareDB's Rust client. It learns the region map from the stores it is given, sends each
//! request to the leader of the key's region (any replica when the leader is unknown), and
//! retries with backoff when a request provably did not take effect: the store was unreachable,
//! the region had no leader, or the key's region moved. An outcome it cannot know (a timeout
//! after the request was sent) is returned to the caller, never retried behind its back.
//! Concurrent gets and puts of one region are batched into one request while an earlier batch
//! is on its way (`coalesce`); a lone call goes at once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), flaredb_client::Error> {
//! let db = flaredb_client::Client::connect(flaredb_client::Config::new(["https://127.0.0.1:2479"])).await?;
//! db.put("default", b"users/alice", b"admin").await?;
//! assert_eq!(db.get("default", b"users/alice").await?.map(|r| r.value), Some(b"admin".to_vec()));
//! # Ok(()) }
//! ```

mod client;
mod coalesce;
mod error;
pub mod keys;
pub mod records;
mod routing;

pub use client::{Client, Config, ScanOptions};
pub use coalesce::Coalesced;
pub use error::Error;
pub use photon_api::flaredb::v1::Record;
#[doc(hidden)]
// For `json_record!` in crates that do not depend on serde_json themselves.
pub use serde_json;
