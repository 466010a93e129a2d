//! What the iSCSI target serves: the `Targets` trait through which it finds targets by name
//! (LightningStor implements it over its volumes), and `StaticTargets`, a fixed map for tests
//! and simple setups. Each target has one logical unit, LUN 0.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::device::{BlockDevice, BlockError, BlockFuture};

/// CHAP credentials an initiator must present to log in to a target.
#[derive(Clone, PartialEq, Eq)]
pub struct ChapCredentials {
    pub user: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ChapCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChapCredentials").field("user", &self.user).finish_non_exhaustive()
    }
}

/// How an initiator may log in to a target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// With credentials, the initiator must authenticate with CHAP (MD5); without, the login
    /// is accepted with AuthMethod=None.
    pub chap: Option<ChapCredentials>,
}

/// The targets a server offers. Login happens in two steps so that nothing with side effects
/// (a lease on a volume) happens before the initiator has authenticated: `access` when the
/// initiator names a target, `open` when the login is about to succeed. All calls may do I/O
/// and must not borrow their arguments in the futures they return.
pub trait Targets: Send + Sync + 'static {
    /// The target names a discovery session (SendTargets=All) lists for `initiator`. An error
    /// is logged and answered with an empty list.
    fn discover(&self, initiator: &str) -> BlockFuture<'_, Vec<String>>;

    /// Whether `target` exists for `initiator`, and how it must authenticate. `Ok(None)`: the
    /// login fails with "target not found" (0x0203). `Err`: "service unavailable" (0x0301).
    fn access(&self, target: &str, initiator: &str) -> BlockFuture<'_, Option<Access>>;

    /// The device behind `target` for a session that has authenticated. The session holds it
    /// until it ends, then drops it (LightningStor releases its lease there). `Ok(None)`: the
    /// target went away ("target removed", 0x0204); `Err`: the target cannot be opened now,
    /// for instance another host holds the volume ("service unavailable", 0x0301).
    fn open(&self, target: &str, initiator: &str) -> BlockFuture<'_, Option<Arc<dyn BlockDevice>>>;
}

#[derive(Clone)]
struct Entry {
    device: Arc<dyn BlockDevice>,
    access: Access,
}

/// A fixed set of named targets.
#[derive(Default, Clone)]
pub struct StaticTargets {
    targets: BTreeMap<String, Entry>,
}

impl StaticTargets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the target `name`, open to every initiator.
    pub fn with(self, name: impl Into<String>, device: Arc<dyn BlockDevice>) -> Self {
        self.with_access(name, device, Access::default())
    }

    /// Adds (or replaces) the target `name` with the given access rules.
    pub fn with_access(mut self, name: impl Into<String>, device: Arc<dyn BlockDevice>, access: Access) -> Self {
        self.targets.insert(name.into(), Entry { device, access });
        self
    }
}

impl Targets for StaticTargets {
    fn discover(&self, _initiator: &str) -> BlockFuture<'_, Vec<String>> {
        let names = self.targets.keys().cloned().collect();
        Box::pin(async move { Ok(names) })
    }

    fn access(&self, target: &str, _initiator: &str) -> BlockFuture<'_, Option<Access>> {
        let access = self.targets.get(target).map(|e| e.access.clone());
        Box::pin(async move { Ok(access) })
    }

    fn open(&self, target: &str, _initiator: &str) -> BlockFuture<'_, Option<Arc<dyn BlockDevice>>> {
        let device = self.targets.get(target).map(|e| e.device.clone());
        Box::pin(async move { Ok::<_, BlockError>(device) })
    }
}
