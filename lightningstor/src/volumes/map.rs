//! Where a volume's extents are: its extent map, kept in flaredb beside the buckets' records,
//! keyed by the volume's uid (a volume deleted and created again under its name starts empty):
//!
//! - `vol/<uid>/head`: the epoch being written and the parent a clone reads through;
//! - `vol/<uid>/x/<index>/<epoch>`: extent `index` (of `EXTENT_BYTES`) as written in `epoch`.
//!
//! A snapshot is an epoch: taking one moves the head to the next epoch, so the next write to an
//! extent makes a new version of it (copy-on-write) and the snapshot keeps reading the version
//! it had. A view at epoch `e` reads, for each extent, the newest version at or below `e`, then
//! the parent's, then zeroes (thin provisioning: an extent never written has no version).

use std::collections::BTreeMap;
use std::sync::Mutex;

use flaredb_client::records::{RecordError, Records};
use serde::{Deserialize, Serialize};

use photon_block::BlockFuture;
use super::lock;

/// The head of a volume: what it writes, and what it reads through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Writes make versions of this epoch; snapshots hold the lower ones.
    pub epoch: u32,
    /// A clone's source: that volume as of that epoch.
    #[serde(default)]
    pub parent: Option<Parent>,
    /// An image is still being copied in: not to be attached yet.
    #[serde(default)]
    pub importing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    pub uid: String,
    pub epoch: u32,
}

/// One version of one extent: its id and the nodes holding its copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtentRef {
    pub id: String,
    /// Empty: this node alone (a volume with one copy on a single node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
    /// Replicas that missed a write or hold a corrupt block: not read until repaired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stale: Vec<String>,
}

flaredb_client::json_record!(Head, ExtentRef);

/// Every version of a volume's extents: index → epoch → extent.
pub type Versions = BTreeMap<u64, BTreeMap<u32, ExtentRef>>;

/// What the engine needs of the map's storage (flaredb; memory in tests).
pub trait MapStore: Send + Sync + 'static {
    /// The head (`None`: no such volume's data yet) and every extent version.
    fn load<'a>(&'a self, uid: &'a str) -> BlockFuture<'a, (Option<Head>, Versions)>;
    fn put_head<'a>(&'a self, uid: &'a str, head: &'a Head) -> BlockFuture<'a, ()>;
    fn put_extent<'a>(&'a self, uid: &'a str, index: u64, epoch: u32, extent: &'a ExtentRef) -> BlockFuture<'a, ()>;
    /// Forgets a volume's data: its head and every extent version (the extents themselves are
    /// the caller's to remove first).
    fn forget<'a>(&'a self, uid: &'a str) -> BlockFuture<'a, ()>;
}

fn failed(e: RecordError) -> photon_block::BlockError {
    photon_block::BlockError::Io(format!("the volume's extent map in flaredb: {e}"))
}

fn head_key(uid: &str) -> String {
    format!("vol/{uid}/head")
}

fn extents_prefix(uid: &str) -> String {
    format!("vol/{uid}/x/")
}

fn extent_key(uid: &str, index: u64, epoch: u32) -> String {
    // Fixed-width hex: keys sort as the numbers do.
    format!("vol/{uid}/x/{index:012x}/{epoch:08x}")
}

/// Index and epoch from an extent key (`None`: not one).
fn parse_extent_key(uid: &str, key: &str) -> Option<(u64, u32)> {
    let rest = key.strip_prefix(&extents_prefix(uid))?;
    let (index, epoch) = rest.split_once('/')?;
    Some((u64::from_str_radix(index, 16).ok()?, u32::from_str_radix(epoch, 16).ok()?))
}

/// Writes `value` at `key` whatever is there (a create, else an update of what is there).
async fn put<T: flaredb_client::records::ToRecord>(records: &Records, key: &str, value: &T) -> Result<(), RecordError> {
    for _ in 0..8 {
        match records.create(key, value, || key.to_string()).await {
            Ok(()) => return Ok(()),
            Err(RecordError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        if let Some(current) = records.get::<serde_json::Value>(key).await? {
            if records.update(key, value, current.version).await? {
                return Ok(());
            }
        }
    }
    Err(RecordError::Encode(format!("{key} kept changing under this write")))
}

impl MapStore for Records {
    fn load<'a>(&'a self, uid: &'a str) -> BlockFuture<'a, (Option<Head>, Versions)> {
        Box::pin(async move {
            let head = self.get::<Head>(&head_key(uid)).await.map_err(failed)?.map(|v| v.value);
            let mut versions = Versions::new();
            for (key, extent) in self.list::<ExtentRef>(&extents_prefix(uid)).await.map_err(failed)? {
                if let Some((index, epoch)) = parse_extent_key(uid, &key) {
                    versions.entry(index).or_default().insert(epoch, extent);
                }
            }
            Ok((head, versions))
        })
    }

    fn put_head<'a>(&'a self, uid: &'a str, head: &'a Head) -> BlockFuture<'a, ()> {
        Box::pin(async move { put(self, &head_key(uid), head).await.map_err(failed) })
    }

    fn put_extent<'a>(&'a self, uid: &'a str, index: u64, epoch: u32, extent: &'a ExtentRef) -> BlockFuture<'a, ()> {
        Box::pin(async move { put(self, &extent_key(uid, index, epoch), extent).await.map_err(failed) })
    }

    fn forget<'a>(&'a self, uid: &'a str) -> BlockFuture<'a, ()> {
        Box::pin(async move {
            // Versions first, the head last: a crash midway leaves a head to find again.
            for (key, _) in self.list::<serde_json::Value>(&extents_prefix(uid)).await.map_err(failed)? {
                self.delete(&key).await.map_err(failed)?;
            }
            self.delete(&head_key(uid)).await.map_err(failed)?;
            Ok(())
        })
    }
}

/// The map in memory, for the engine's tests.
#[derive(Default)]
pub struct MemMap {
    heads: Mutex<BTreeMap<String, Head>>,
    versions: Mutex<BTreeMap<String, Versions>>,
}

impl MapStore for MemMap {
    fn load<'a>(&'a self, uid: &'a str) -> BlockFuture<'a, (Option<Head>, Versions)> {
        Box::pin(async move { Ok((lock(&self.heads).get(uid).cloned(), lock(&self.versions).get(uid).cloned().unwrap_or_default())) })
    }

    fn put_head<'a>(&'a self, uid: &'a str, head: &'a Head) -> BlockFuture<'a, ()> {
        Box::pin(async move {
            lock(&self.heads).insert(uid.to_string(), head.clone());
            Ok(())
        })
    }

    fn put_extent<'a>(&'a self, uid: &'a str, index: u64, epoch: u32, extent: &'a ExtentRef) -> BlockFuture<'a, ()> {
        Box::pin(async move {
            lock(&self.versions).entry(uid.to_string()).or_default().entry(index).or_default().insert(epoch, extent.clone());
            Ok(())
        })
    }

    fn forget<'a>(&'a self, uid: &'a str) -> BlockFuture<'a, ()> {
        Box::pin(async move {
            lock(&self.versions).remove(uid);
            lock(&self.heads).remove(uid);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extent_keys_sort_by_index_then_epoch_and_parse_back() {
        let a = extent_key("u", 2, 10);
        let b = extent_key("u", 10, 1);
        assert!(a < b);
        assert_eq!(parse_extent_key("u", &b), Some((10, 1)));
        assert_eq!(parse_extent_key("u", "vol/u/head"), None);
        assert_eq!(parse_extent_key("u", "vol/u/x/zz/1"), None);
    }
}
