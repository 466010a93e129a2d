//! How queries arrive: UDP (`udp`, many datagrams per system call by `mmsg`), and TCP or DNS
//! over TLS (`stream`, RFC 1035 §4.2.2 and RFC 7858 framing). Both ask `cache` first and hand
//! the bytes to `dns::respond` against the current catalog otherwise; TSIG and zone transfers
//! (over streams) are `crate::transfer`'s.

pub mod cache;
mod mmsg;
pub mod rrl;
pub mod stream;
pub mod udp;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use cache::{AnswerCache, Tally};
use rrl::{RateLimiter, Verdict};

use crate::dns::respond::{respond_deferring, Deferred};
use crate::dns::{Catalog, Outcome, Transport};
use crate::metrics::DnsMetrics;
use crate::transfer::Transfers;

/// What every transport shares: the zones to answer from, swapped whole on each change, the
/// responses already made from them, and the counters.
#[derive(Clone)]
pub struct Answerer {
    catalog: Arc<RwLock<Arc<Catalog>>>,
    /// The published catalog's generation, read by workers to know when to take it anew.
    generation: Arc<AtomicU64>,
    cache: Arc<AnswerCache>,
    metrics: Arc<DnsMetrics>,
    limiter: Arc<RateLimiter>,
    /// TSIG keys and what zone transfers read.
    transfers: Transfers,
}

/// One worker's hold on the catalog, taken anew only when another is published: checking
/// costs an atomic read, taking it a lock.
pub struct View {
    catalog: Arc<Catalog>,
}

impl Answerer {
    pub fn new(metrics: Arc<DnsMetrics>, limiter: RateLimiter) -> Self {
        Self {
            catalog: Arc::new(RwLock::new(Arc::new(Catalog::default()))),
            generation: Arc::new(AtomicU64::new(0)),
            cache: Arc::new(AnswerCache::default()),
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
        let mut guard = match self.catalog.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let generation = guard.generation() + 1;
        *guard = Arc::new(catalog.with_generation(generation));
        self.generation.store(generation, Ordering::Release);
    }

    /// A worker's view of the catalog, for `answer_udp` and `answer_stream`.
    pub fn view(&self) -> View {
        View { catalog: self.catalog() }
    }

    /// `view` brought up to the published catalog.
    fn current<'v>(&self, view: &'v mut View) -> &'v Arc<Catalog> {
        if self.generation.load(Ordering::Acquire) != view.catalog.generation() {
            view.catalog = self.catalog();
        }
        &view.catalog
    }

    /// The response to one UDP query from `client`, counted and rate limited, written into
    /// `out`; false when nothing is to be sent.
    pub fn answer_udp(&self, view: &mut View, query: &[u8], client: IpAddr, out: &mut Vec<u8>) -> bool {
        let catalog = self.current(view);
        let generation = catalog.generation();
        if let Some(send) =
            self.cache.hit(generation, query, Transport::Udp, out, |out, tally| self.limit(out, client, tally))
        {
            return send;
        }
        let Some((bytes, outcome, deferred)) = self.respond(catalog, query, Transport::Udp) else {
            self.metrics.dropped(Transport::Udp);
            return false;
        };
        let tally = self.tally(&outcome, Transport::Udp);
        if deferred.cacheable {
            self.cache.put(generation, query, Transport::Udp, &bytes, tally.clone());
        }
        *out = bytes;
        self.limit(out, client, &tally)
    }

    /// Response rate limiting of the UDP response in `out` to `client`, and its count.
    fn limit(&self, out: &mut Vec<u8>, client: IpAddr, tally: &Tally) -> bool {
        match self.limiter.verdict(client, tally.class) {
            Verdict::Send => {
                self.metrics.count(&tally.counter, tally.truncated);
                true
            }
            Verdict::Slip => {
                self.metrics.rate_limited(true);
                match rrl::truncated(out) {
                    Some(slipped) => {
                        *out = slipped;
                        true
                    }
                    None => false,
                }
            }
            Verdict::Drop => {
                self.metrics.rate_limited(false);
                false
            }
        }
    }

    /// The responses to one query over TCP or TLS from `peer`: one, or a zone transfer's
    /// messages (none: close the connection).
    pub fn answer_stream(&self, view: &mut View, query: &[u8], peer: SocketAddr) -> Vec<Vec<u8>> {
        let catalog = self.current(view);
        let generation = catalog.generation();
        let mut out = Vec::new();
        let counted = |_: &mut Vec<u8>, tally: &Tally| self.metrics.count(&tally.counter, tally.truncated);
        if self.cache.hit(generation, query, Transport::Stream, &mut out, counted).is_some() {
            return vec![out];
        }
        match self.respond(catalog, query, Transport::Stream) {
            Some((_, _, Deferred { transfer: true, .. })) => self.transfers.transfer(query, peer),
            Some((bytes, outcome, deferred)) => {
                let tally = self.tally(&outcome, Transport::Stream);
                self.metrics.count(&tally.counter, tally.truncated);
                if deferred.cacheable {
                    self.cache.put(generation, query, Transport::Stream, &bytes, tally);
                }
                vec![bytes]
            }
            None => {
                self.metrics.dropped(Transport::Stream);
                Vec::new()
            }
        }
    }

    /// How a response like `outcome` is counted and rate limited.
    fn tally(&self, outcome: &Outcome, transport: Transport) -> Tally {
        Tally {
            counter: self.metrics.responses(outcome, transport),
            truncated: outcome.truncated,
            class: self.limiter.class(outcome),
        }
    }

    /// `dns::respond` against `catalog`, the response signed if the query was.
    fn respond(&self, catalog: &Catalog, query: &[u8], transport: Transport) -> Option<(Vec<u8>, Outcome, Deferred)> {
        let (bytes, outcome, deferred) = respond_deferring(catalog, query, transport)?;
        let bytes =
            if deferred.signed && !deferred.transfer { self.transfers.sign_answer(query, bytes) } else { bytes };
        Some((bytes, outcome, deferred))
    }

    pub fn metrics(&self) -> &DnsMetrics {
        &self.metrics
    }
}
