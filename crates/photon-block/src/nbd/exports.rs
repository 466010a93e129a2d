//! What the NBD server serves: the `Exports` trait through which it finds devices by name
//! (LightningStor implements it over its volumes), and `StaticExports`, a fixed map for tests
//! and simple setups.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::device::{BlockDevice, BlockFuture};

/// The exports a server offers. Both calls may do I/O (a volume lookup, a lease).
pub trait Exports: Send + Sync + 'static {
    /// The device behind `name`. `Ok(None)`: there is no such export (the client is told
    /// `NBD_REP_ERR_UNKNOWN`). `Err`: the export exists but cannot be opened now, or the
    /// caller may not have it; the client gets `NBD_REP_ERR_UNKNOWN` with the error's text,
    /// since the protocol has no better answer to "not available". The future must not
    /// borrow `name`.
    fn open(&self, name: &str) -> BlockFuture<'_, Option<Arc<dyn BlockDevice>>>;

    /// The names `NBD_OPT_LIST` answers with. An error is answered with
    /// `NBD_REP_ERR_PLATFORM` and its text.
    fn list(&self) -> BlockFuture<'_, Vec<String>>;
}

/// A fixed set of named devices.
#[derive(Default, Clone)]
pub struct StaticExports {
    devices: BTreeMap<String, Arc<dyn BlockDevice>>,
}

impl StaticExports {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the export `name`.
    pub fn with(mut self, name: impl Into<String>, device: Arc<dyn BlockDevice>) -> Self {
        self.devices.insert(name.into(), device);
        self
    }
}

impl Exports for StaticExports {
    fn open(&self, name: &str) -> BlockFuture<'_, Option<Arc<dyn BlockDevice>>> {
        let device = self.devices.get(name).cloned();
        Box::pin(async move { Ok(device) })
    }

    fn list(&self) -> BlockFuture<'_, Vec<String>> {
        let names = self.devices.keys().cloned().collect();
        Box::pin(async move { Ok(names) })
    }
}
