//! The registrar: keeps FlashDNS's zones of ports' names in step with the resources, on the one
//! prismnet node holding its claim in chainfire (any node takes over when the holder goes). A
//! `photon-reconcile` reconciler keyed by zone, plus a sweep that claims the platform's domain
//! and finds zones of VPCs deleted while no registrar ran. Every reconcile compares what
//! FlashDNS has with what should be, so a restart, a lost call or a record changed by hand there
//! is repaired by the next pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use photon_reconcile::{Queue, Reconciler, Requeue};
use photon_resource::Layout;

use super::flashdns::{FlashDns, Set};
use super::{desired, Naming, Zones};
use crate::dataplane::lock;
use crate::error::Result;

/// Where in chainfire the registrar's holder is named.
pub const CLAIM: &str = "/photoncloud/prismnet/registrar";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// The platform's domain claimed, and FlashDNS's zones compared with the VPCs.
    Sweep,
    Zone(String),
}

pub struct Registrar {
    naming: Naming,
    layout: Layout,
    ttl: u32,
    flashdns: FlashDns,
    desired: Mutex<Zones>,
    /// VPC zones FlashDNS had at the last sweep.
    seen: Mutex<BTreeSet<String>>,
    problems: Mutex<Vec<String>>,
    held: AtomicBool,
    failing: Mutex<BTreeMap<Key, String>>,
    queue: Arc<Queue<Key>>,
}

/// What `/health` says of the registrar.
pub struct Census {
    pub held: bool,
    pub zones: usize,
    pub failing: usize,
}

impl Registrar {
    pub fn new(naming: Naming, layout: Layout, ttl: u32, flashdns: FlashDns) -> Arc<Self> {
        Arc::new(Self {
            naming,
            layout,
            ttl,
            flashdns,
            desired: Mutex::default(),
            seen: Mutex::default(),
            problems: Mutex::default(),
            held: AtomicBool::new(false),
            failing: Mutex::default(),
            queue: Arc::new(Queue::default()),
        })
    }

    pub fn queue(&self) -> Arc<Queue<Key>> {
        self.queue.clone()
    }

    /// The resources changed: the zones whose records changed are queued.
    pub fn apply_resources(&self, items: &BTreeMap<String, Vec<u8>>) {
        let (zones, problems) = desired(&self.naming, &self.layout, items);
        let mut current = lock(&self.desired);
        let changed: Vec<Key> = zones
            .iter()
            .filter(|(zone, records)| current.get(*zone) != Some(*records))
            .map(|(zone, _)| Key::Zone(zone.clone()))
            .chain(current.keys().filter(|zone| !zones.contains_key(*zone)).map(|zone| Key::Zone(zone.clone())))
            .collect();
        *current = zones;
        drop(current);
        let mut known = lock(&self.problems);
        if *known != problems {
            for problem in problems.iter().filter(|p| !known.contains(p)) {
                tracing::warn!(%problem, "a port gets no name");
            }
            *known = problems;
        }
        drop(known);
        if self.held.load(Ordering::SeqCst) {
            self.queue.push_all(changed);
        }
    }

    /// This node took (`true`) or lost the registrar's claim.
    pub fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
        if held {
            tracing::info!(domain = %self.naming.apex(), "this node now keeps ports' names in FlashDNS");
            self.queue.push_all(self.keys());
        } else {
            tracing::info!("this node no longer keeps ports' names");
            lock(&self.failing).clear();
        }
    }

    pub fn census(&self) -> Census {
        Census {
            held: self.held.load(Ordering::SeqCst),
            zones: lock(&self.desired).len(),
            failing: lock(&self.failing).len(),
        }
    }

    async fn sweep(&self) -> Result<()> {
        self.flashdns.ensure_zone(&self.naming.apex(), self.ttl).await?;
        let zones: BTreeSet<String> =
            self.flashdns.zones().await?.into_iter().filter(|z| self.naming.is_vpc_zone(z)).collect();
        let desired = lock(&self.desired);
        let stale: Vec<Key> = zones.iter().filter(|z| !desired.contains_key(*z)).map(|z| Key::Zone(z.clone())).collect();
        drop(desired);
        *lock(&self.seen) = zones;
        self.queue.push_all(stale);
        Ok(())
    }

    /// Makes FlashDNS's `zone` what the resources say: created with every port's record, its
    /// other records removed; deleted with its VPC.
    async fn converge(&self, zone: &str) -> Result<()> {
        let records = lock(&self.desired).get(zone).cloned();
        let Some(records) = records else {
            self.flashdns.delete_zone(zone).await?;
            lock(&self.seen).remove(zone);
            return Ok(());
        };
        self.flashdns.ensure_zone(zone, self.ttl).await?;
        let wanted: Vec<Set> = records
            .iter()
            .map(|(name, ip)| Set { name: name.clone(), rtype: "A".into(), ttl: self.ttl, data: vec![ip.to_string()] })
            .collect();
        let current = self.flashdns.records(zone).await?;
        let (mut set, mut deleted) = (0, 0);
        for set_wanted in wanted.iter().filter(|w| !current.contains(w)) {
            self.flashdns.set(zone, set_wanted).await?;
            set += 1;
        }
        for stale in current.iter().filter(|c| !(c.rtype == "A" && records.contains_key(&c.name))) {
            self.flashdns.delete(zone, &stale.name, &stale.rtype).await?;
            deleted += 1;
        }
        if set + deleted > 0 {
            tracing::info!(%zone, set, deleted, names = records.len(), "ports' names updated");
        }
        lock(&self.seen).insert(zone.to_string());
        Ok(())
    }
}

impl Reconciler for Registrar {
    type Key = Key;

    fn keys(&self) -> Vec<Key> {
        let mut keys = vec![Key::Sweep];
        let zones: BTreeSet<String> = lock(&self.desired).keys().chain(lock(&self.seen).iter()).cloned().collect();
        keys.extend(zones.into_iter().map(Key::Zone));
        keys
    }

    async fn reconcile(&self, key: &Key) -> std::result::Result<Requeue, String> {
        if !self.held.load(Ordering::SeqCst) {
            return Ok(Requeue::Done);
        }
        let result = match key {
            Key::Sweep => self.sweep().await,
            Key::Zone(zone) => self.converge(zone).await,
        };
        let mut failing = lock(&self.failing);
        match result {
            Ok(()) => {
                failing.remove(key);
                Ok(Requeue::Done)
            }
            Err(e) => {
                failing.insert(key.clone(), e.to_string());
                Err(e.to_string())
            }
        }
    }
}
