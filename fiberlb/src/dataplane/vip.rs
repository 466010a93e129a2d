//! VIP failover: for every load balancer address in the plan, this node competes for a claim
//! in chainfire (`photon_resource::claim`); while it holds one it has the address on the
//! configured interface and has announced it (gratuitous ARP, or an unsolicited neighbour
//! advertisement for IPv6); when it loses or gives it up, it
//! removes it. A holder that dies stops renewing its lease; within the lease's TTL another node
//! holds the claim, adds the address and announces it — clients follow the announcement.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use photon_reconcile::{Queue, Reconciler, Requeue};
use photon_resource::Store;
use tokio_util::sync::CancellationToken;

use super::Shared;

/// Where the claims live in chainfire (outside the resources' prefix).
pub const CLAIMS: &str = "/photoncloud/fiberlb/vips/";

pub struct VipSettings {
    pub interface: String,
    pub prefix_len: u8,
    pub prefix_len_v6: u8,
    pub node: String,
    pub ttl: Duration,
}

pub struct Vips {
    shared: Arc<Shared>,
    store: Store,
    settings: Arc<VipSettings>,
    running: Mutex<BTreeMap<IpAddr, CancellationToken>>,
    queue: Arc<Queue<IpAddr>>,
}

impl Vips {
    pub fn new(shared: Arc<Shared>, store: Store, settings: VipSettings) -> Arc<Self> {
        Arc::new(Self { shared, store, settings: Arc::new(settings), running: Mutex::default(), queue: Arc::default() })
    }

    pub fn queue(&self) -> Arc<Queue<IpAddr>> {
        self.queue.clone()
    }

    /// Every VIP some listener binds.
    fn desired(&self) -> BTreeSet<IpAddr> {
        self.shared.plan().listeners.values().map(|l| l.bind.ip()).filter(|ip| !ip.is_unspecified() && !ip.is_loopback()).collect()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<IpAddr, CancellationToken>> {
        match self.running.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl Reconciler for Vips {
    type Key = IpAddr;

    fn keys(&self) -> Vec<IpAddr> {
        let mut keys = self.desired();
        keys.extend(self.running().keys().copied());
        keys.into_iter().collect()
    }

    async fn reconcile(&self, vip: &IpAddr) -> Result<Requeue, String> {
        let wanted = self.desired().contains(vip);
        let mut running = self.running();
        match (wanted, running.get(vip)) {
            (true, Some(_)) | (false, None) => {}
            (false, Some(stop)) => {
                stop.cancel();
                running.remove(vip);
            }
            (true, None) => {
                let stop = CancellationToken::new();
                let (settings, vip) = (self.settings.clone(), *vip);
                let key = format!("{CLAIMS}{vip}");
                tokio::spawn(photon_resource::claim::hold(
                    self.store.clone(),
                    key,
                    settings.node.clone(),
                    settings.ttl,
                    stop.clone(),
                    move |held| {
                        if held {
                            take(&settings, vip);
                        } else {
                            give_up(&settings, vip);
                        }
                    },
                ));
                running.insert(vip, stop);
            }
        }
        Ok(Requeue::Done)
    }
}

/// The address as `ip` takes it, with the prefix length of its family.
fn with_prefix(settings: &VipSettings, vip: IpAddr) -> String {
    let len = if vip.is_ipv4() { settings.prefix_len } else { settings.prefix_len_v6 };
    format!("{vip}/{len}")
}

/// Adds `vip` to the interface and announces it.
fn take(settings: &VipSettings, vip: IpAddr) {
    let address = with_prefix(settings, vip);
    // No duplicate address detection for IPv6: the address is ours by the claim, and DAD would
    // keep it unusable (tentative) for a second.
    let nodad: &[&str] = if vip.is_ipv6() { &["nodad"] } else { &[] };
    match ip(&[&["addr", "replace", &address, "dev", &settings.interface], nodad].concat()) {
        Ok(()) => tracing::info!(%vip, interface = %settings.interface, "holding the VIP: address added"),
        Err(e) => {
            tracing::error!(%vip, interface = %settings.interface, error = %e, "holding the VIP but cannot add it");
            return;
        }
    }
    if let Err(e) = photon_net::announce::announce(&settings.interface, vip, 3) {
        tracing::warn!(%vip, error = %e, "VIP not announced; clients learn the new holder when their neighbour entry expires");
    }
}

fn give_up(settings: &VipSettings, vip: IpAddr) {
    let address = with_prefix(settings, vip);
    match ip(&["addr", "del", &address, "dev", &settings.interface]) {
        Ok(()) => tracing::info!(%vip, interface = %settings.interface, "VIP given up: address removed"),
        Err(e) => tracing::debug!(%vip, error = %e, "VIP given up (the address was not there)"),
    }
}

/// iproute2, as every Linux server has it.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}
