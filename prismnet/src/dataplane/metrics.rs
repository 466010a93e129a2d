//! PrismNET's dataplane on `/metrics`, per VPC realised on this node: ports plugged in, filter
//! rules applied, and how long each reconcile took; and how many VPCs fail to converge.

use std::sync::Arc;

use photon_runtime::histogram::AtomicHistogram;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VpcLabels {
    /// `org/project`.
    pub project: String,
    pub vpc: String,
    pub vni: u32,
}

fn durations() -> AtomicHistogram {
    // 0.5 ms .. ~16 s.
    AtomicHistogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

pub struct Metrics {
    ports: Family<VpcLabels, Gauge>,
    rules: Family<VpcLabels, Gauge>,
    reconcile: Family<VpcLabels, AtomicHistogram, fn() -> AtomicHistogram>,
    failing: Gauge,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            ports: Family::default(),
            rules: Family::default(),
            reconcile: Family::new_with_constructor(durations),
            failing: Gauge::default(),
        })
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register("prismnet_vpc_ports", "Ports plugged in on this node, by VPC", self.ports.clone());
        registry.register("prismnet_vpc_filter_rules", "nftables rules applied on this node, by VPC", self.rules.clone());
        registry.register("prismnet_vpc_reconcile_duration_seconds", "Time to converge a VPC on this node", self.reconcile.clone());
        registry.register("prismnet_vpcs_failing", "VPCs of this node whose last converge failed", self.failing.clone());
    }

    /// A converge of the VPC `labels` names: its ports and rules now, how long it took.
    pub fn converged(&self, labels: &VpcLabels, ports: usize, rules: usize, seconds: f64) {
        self.ports.get_or_create(labels).set(ports as i64);
        self.rules.get_or_create(labels).set(rules as i64);
        self.reconcile.get_or_create(labels).observe(seconds);
    }

    /// The VPC is gone from this node: its series go too.
    pub fn removed(&self, labels: &VpcLabels) {
        self.ports.remove(labels);
        self.rules.remove(labels);
        self.reconcile.remove(labels);
    }

    pub fn failing(&self, count: usize) {
        self.failing.set(count as i64);
    }
}
