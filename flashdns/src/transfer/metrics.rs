//! The counters of transfers and notifies on `/metrics`: transfers by zone, kind and how they
//! were answered; refusals by reason (no zone label: the name is the client's choice); NOTIFYs
//! sent and acknowledged by zone.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransferLabels {
    zone: String,
    /// `axfr` or `ixfr`.
    kind: &'static str,
    /// `full`, `diff` or `current`.
    answer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneLabels {
    zone: String,
}

#[derive(Default)]
pub struct TransferMetrics {
    transfers: Family<TransferLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    notifies_sent: Family<ZoneLabels, Counter>,
    notifies_acked: Family<ZoneLabels, Counter>,
}

impl TransferMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "flashdns_transfers",
            "Zone transfers served, by zone, kind (axfr, ixfr) and answer (full, diff, current)",
            self.transfers.clone(),
        );
        registry.register("flashdns_transfer_refusals", "Zone transfers refused, by reason", self.refusals.clone());
        registry.register(
            "flashdns_notifies_sent",
            "NOTIFY messages sent to secondaries (each attempt), by zone",
            self.notifies_sent.clone(),
        );
        registry.register(
            "flashdns_notifies_acked",
            "NOTIFY messages a secondary acknowledged, by zone",
            self.notifies_acked.clone(),
        );
    }

    pub fn transfer(&self, zone: &str, kind: &'static str, answer: &'static str) {
        self.transfers.get_or_create(&TransferLabels { zone: zone.to_string(), kind, answer }).inc();
    }

    pub fn refused(&self, reason: &'static str) {
        self.refusals.get_or_create(&RefusalLabels { reason }).inc();
    }

    pub fn notify_sent(&self, zone: &str) {
        self.notifies_sent.get_or_create(&ZoneLabels { zone: zone.to_string() }).inc();
    }

    pub fn notify_acked(&self, zone: &str) {
        self.notifies_acked.get_or_create(&ZoneLabels { zone: zone.to_string() }).inc();
    }
}
