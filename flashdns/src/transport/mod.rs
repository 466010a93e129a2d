//! How queries arrive: UDP (`udp`), and TCP or DNS over TLS (`stream`, RFC 1035 §4.2.2 and
//! RFC 7858 framing). Both hand the bytes to `dns::respond` against the current catalog.

pub mod stream;
pub mod udp;

use std::sync::{Arc, RwLock};

use crate::dns::{Catalog, Transport};
use crate::metrics::DnsMetrics;

/// What every transport shares: the zones to answer from, swapped whole on each change, and
/// the counters.
#[derive(Clone)]
pub struct Answerer {
    catalog: Arc<RwLock<Arc<Catalog>>>,
    metrics: Arc<DnsMetrics>,
}

impl Answerer {
    pub fn new(metrics: Arc<DnsMetrics>) -> Self {
        Self { catalog: Arc::new(RwLock::new(Arc::new(Catalog::default()))), metrics }
    }

    /// The catalog queries are answered from now.
    pub fn catalog(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(guard) => guard.clone(),
            // A writer never panics while holding the lock; if one did, the last catalog stands.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the catalog; queries already being answered finish with the old one.
    pub fn publish(&self, catalog: Catalog) {
        let catalog = Arc::new(catalog);
        match self.catalog.write() {
            Ok(mut guard) => *guard = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
    }

    /// The response to one query, counted.
    pub fn answer(&self, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let catalog = self.catalog();
        match crate::dns::respond(&catalog, query, transport) {
            Some((bytes, outcome)) => {
                self.metrics.count(&outcome, transport);
                Some(bytes)
            }
            None => {
                self.metrics.dropped(transport);
                None
            }
        }
    }

    pub fn metrics(&self) -> &DnsMetrics {
        &self.metrics
    }
}
