//! How queries arrive: UDP (`udp`), and TCP or DNS over TLS (`stream`, RFC 1035 §4.2.2 and
//! RFC 7858 framing). Both hand the bytes to `dns::respond` against the current catalog; TSIG
//! and zone transfers (over streams) are `crate::transfer`'s.

pub mod rrl;
pub mod stream;
pub mod udp;

use std::sync::{Arc, RwLock};

use std::net::{IpAddr, SocketAddr};

use rrl::{RateLimiter, Verdict};

use crate::dns::respond::{respond_deferring, Deferred};
use crate::dns::{Catalog, Outcome, Transport};
use crate::metrics::DnsMetrics;
use crate::transfer::Transfers;

/// What every transport shares: the zones to answer from, swapped whole on each change, and
/// the counters.
#[derive(Clone)]
pub struct Answerer {
    catalog: Arc<RwLock<Arc<Catalog>>>,
    metrics: Arc<DnsMetrics>,
    limiter: Arc<RateLimiter>,
    /// TSIG keys and what zone transfers read.
    transfers: Transfers,
}

impl Answerer {
    pub fn new(metrics: Arc<DnsMetrics>, limiter: RateLimiter) -> Self {
        Self {
            catalog: Arc::new(RwLock::new(Arc::new(Catalog::default()))),
            metrics,
            limiter: Arc::new(limiter),
            transfers: Transfers::default(),
        }
    }

    /// Serves zone transfers and checks TSIG with `transfers`.
    pub fn with_transfers(mut self, transfers: Transfers) -> Self {
        self.transfers = transfers;
        self
    }

    pub fn transfers(&self) -> &Transfers {
        &self.transfers
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

    /// The response to one UDP query from `client`, counted and rate limited.
    pub fn answer_udp(&self, query: &[u8], client: IpAddr) -> Option<Vec<u8>> {
        let Some((bytes, outcome, _)) = self.respond(query, Transport::Udp) else {
            self.metrics.dropped(Transport::Udp);
            return None;
        };
        match self.limiter.verdict(client, &outcome) {
            Verdict::Send => {
                self.metrics.count(&outcome, Transport::Udp);
                Some(bytes)
            }
            Verdict::Slip => {
                self.metrics.rate_limited(true);
                rrl::truncated(&bytes)
            }
            Verdict::Drop => {
                self.metrics.rate_limited(false);
                None
            }
        }
    }

    /// The responses to one query over TCP or TLS from `peer`: one, or a zone transfer's
    /// messages (none: close the connection).
    pub fn answer_stream(&self, query: &[u8], peer: SocketAddr) -> Vec<Vec<u8>> {
        match self.respond(query, Transport::Stream) {
            Some((_, _, Deferred { transfer: true, .. })) => self.transfers.transfer(query, peer),
            Some((bytes, outcome, _)) => {
                self.metrics.count(&outcome, Transport::Stream);
                vec![bytes]
            }
            None => {
                self.metrics.dropped(Transport::Stream);
                Vec::new()
            }
        }
    }

    /// `dns::respond` against the current catalog, the response signed if the query was.
    fn respond(&self, query: &[u8], transport: Transport) -> Option<(Vec<u8>, Outcome, Deferred)> {
        let (bytes, outcome, deferred) = respond_deferring(&self.catalog(), query, transport)?;
        let bytes =
            if deferred.signed && !deferred.transfer { self.transfers.sign_answer(query, bytes) } else { bytes };
        Some((bytes, outcome, deferred))
    }

    pub fn metrics(&self) -> &DnsMetrics {
        &self.metrics
    }
}
