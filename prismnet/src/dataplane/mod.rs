//! This node's dataplane: the VPCs its ports need, realised on its own kernel. The plan
//! (`plan.rs`) is rebuilt from the followed resources and nodes on every change; each VPC whose
//! plan changed is queued, and `photon-reconcile` converges one VPC at a time (`vpc.rs`, over
//! `links.rs` and `netns.rs`), a periodic resync repairing drift nobody announced.

pub mod dhcp;
pub mod filter;
pub mod links;
pub mod metrics;
pub mod netns;
pub mod nodes;
pub mod plan;
pub mod ports;
pub mod uplink;
pub mod vpc;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use photon_reconcile::{Queue, Reconciler, Requeue};
use photon_resource::Layout;

use crate::dataplane::links::Net;
use crate::dataplane::plan::{Plan, ThisNode};
use crate::dataplane::vpc::Realiser;
use crate::error::{PrismnetError, Result};

/// This node's part, from `[dataplane]` and `[external]`.
pub struct Settings {
    pub node: String,
    pub vtep: Ipv4Addr,
    pub underlay_mtu: u32,
    pub netns_prefix: String,
    /// The external interface (routers and floating IPs realised here), if any.
    pub external: Option<String>,
    /// Ports' names, when they are registered in FlashDNS (DHCP gives the domain).
    pub naming: Option<crate::dns::Naming>,
    /// DNS servers for subnets that name none.
    pub dns_servers: Vec<Ipv4Addr>,
}

pub struct Dataplane {
    layout: Layout,
    this: ThisNode,
    realiser: Realiser,
    inputs: Mutex<Inputs>,
    /// The plan built from the inputs (shared with the DHCP servers).
    plan: dhcp::Current,
    dhcp: dhcp::Servers,
    queue: Arc<Queue<u32>>,
    /// VNIs whose last converge failed, with the error.
    failing: Mutex<BTreeMap<u32, String>>,
    pub metrics: Arc<metrics::Metrics>,
    /// The labels of each VPC's series (to remove them with the VPC).
    series: Mutex<BTreeMap<u32, metrics::VpcLabels>>,
}

#[derive(Default)]
struct Inputs {
    items: BTreeMap<String, Vec<u8>>,
    nodes: BTreeMap<String, Ipv4Addr>,
}

/// A lock that outlives a panic elsewhere (the data are replaced whole, never left half-made).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Dataplane {
    /// Needs a Tokio runtime (netlink's socket joins its reactor).
    pub fn new(layout: Layout, settings: Settings) -> Result<Arc<Self>> {
        let host = Net::new(netns::netlink(None).map_err(|e| PrismnetError::io("netlink in this node's namespace", e))?);
        let this = ThisNode {
            name: settings.node,
            underlay_mtu: settings.underlay_mtu,
            external: settings.external.is_some(),
            naming: settings.naming,
            dns_servers: settings.dns_servers,
        };
        let realiser = Realiser {
            host,
            vtep: settings.vtep,
            netns_prefix: settings.netns_prefix,
            external: settings.external,
            applied: Mutex::default(),
            host_rules: Default::default(),
        };
        Ok(Arc::new(Self {
            layout,
            this,
            realiser,
            inputs: Mutex::new(Inputs::default()),
            plan: dhcp::Current::default(),
            dhcp: dhcp::Servers::default(),
            queue: Arc::new(Queue::default()),
            failing: Mutex::new(BTreeMap::new()),
            metrics: metrics::Metrics::new(),
            series: Mutex::new(BTreeMap::new()),
        }))
    }

    pub fn queue(&self) -> Arc<Queue<u32>> {
        self.queue.clone()
    }

    pub fn node(&self) -> &str {
        &self.this.name
    }

    /// Every resource, as followed.
    pub fn apply_resources(&self, items: &BTreeMap<String, Vec<u8>>) {
        let mut inputs = lock(&self.inputs);
        inputs.items = items.clone();
        self.replan(&inputs);
    }

    /// Every node's tunnel address, as followed.
    pub fn apply_nodes(&self, nodes: BTreeMap<String, Ipv4Addr>) {
        let mut inputs = lock(&self.inputs);
        inputs.nodes = nodes;
        self.replan(&inputs);
    }

    /// Rebuilds the plan and queues every VPC whose part of it changed.
    fn replan(&self, inputs: &Inputs) {
        let plan = plan::build(&self.layout, &inputs.items, &inputs.nodes, &self.this);
        let mut current = lock(&self.plan);
        let old = current.clone();
        let changed: Vec<u32> = old
            .vpcs
            .keys()
            .chain(plan.vpcs.keys())
            .copied()
            .filter(|vni| old.vpcs.get(vni) != plan.vpcs.get(vni))
            .collect();
        for problem in plan.problems.iter().filter(|p| !old.problems.contains(p)) {
            tracing::warn!(%problem, "a port cannot be reached yet");
        }
        *current = Arc::new(plan);
        self.queue.push_all(changed);
    }

    pub fn plan(&self) -> Arc<Plan> {
        lock(&self.plan).clone()
    }

    /// (VPCs realised here, ports plugged in here, VPCs failing to converge).
    pub fn census(&self) -> (usize, usize, usize) {
        let plan = self.plan();
        let ports = plan.vpcs.values().map(|v| v.local.len()).sum();
        (plan.vpcs.len(), ports, lock(&self.failing).len())
    }

    async fn converge(&self, vni: u32) -> Result<()> {
        let started = Instant::now();
        let plan = self.plan();
        match plan.vpcs.get(&vni) {
            Some(vpc) => {
                let changes = self.realiser.converge(vpc).await?;
                if vpc.subnets.iter().any(|s| s.dhcp) {
                    let ns = netns::open(&netns::resolve(&self.realiser.namespace(vni)))
                        .map_err(|e| PrismnetError::io("opening the VPC's namespace", e))?;
                    self.dhcp.ensure(vni, &ns, vpc::BRIDGE, self.plan.clone())?;
                } else {
                    self.dhcp.stop(vni);
                }
                let labels = metrics::VpcLabels {
                    project: format!("{}/{}", vpc.owner.org, vpc.owner.project),
                    vpc: vpc.name.clone(),
                    vni,
                };
                let rules = self.realiser.rule_count(vni);
                self.metrics.converged(&labels, vpc.local.len(), rules, started.elapsed().as_secs_f64());
                lock(&self.series).insert(vni, labels);
                if !changes.is_empty() {
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    tracing::info!(vni, vpc = %vpc.name, org = %vpc.owner.org, project = %vpc.owner.project, changes = %changes.join("; "), ms, "converged a VPC");
                }
            }
            None => {
                // Its socket would keep the namespace alive.
                self.dhcp.stop(vni);
                if let Some(labels) = lock(&self.series).remove(&vni) {
                    self.metrics.removed(&labels);
                }
                if self.realiser.remove(vni).await? {
                    tracing::info!(vni, "removed a VPC no port here needs any more");
                }
            }
        }
        let changes = self.realiser.host_external(&plan).await?;
        if !changes.is_empty() {
            tracing::info!(changes = %changes.join("; "), "converged the node's ways out");
        }
        Ok(())
    }
}

impl Reconciler for Dataplane {
    type Key = u32;

    fn keys(&self) -> Vec<u32> {
        let mut keys: Vec<u32> = self.plan().vpcs.keys().copied().collect();
        keys.extend(self.realiser.present());
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    async fn reconcile(&self, vni: &u32) -> std::result::Result<Requeue, String> {
        let outcome = self.converge(*vni).await;
        let mut failing = lock(&self.failing);
        match outcome {
            Ok(()) => {
                failing.remove(vni);
                self.metrics.failing(failing.len());
                Ok(Requeue::Done)
            }
            Err(e) => {
                failing.insert(*vni, e.to_string());
                self.metrics.failing(failing.len());
                Err(e.to_string())
            }
        }
    }
}
