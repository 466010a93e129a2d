//! FlashDNS's counters on `/metrics`: responses by zone, rcode and transport, queries dropped
//! unanswered, truncated responses, and the zones served.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::dns::{Outcome, Transport};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    /// The zone that answered, or "" (REFUSED, errors before a zone was found).
    zone: String,
    rcode: String,
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SlipLabels {
    /// "slip" (sent truncated) or "drop".
    action: &'static str,
}

#[derive(Default)]
pub struct DnsMetrics {
    responses: Family<ResponseLabels, Counter>,
    dropped: Family<TransportLabels, Counter>,
    truncated: Counter,
    rate_limited: Family<SlipLabels, Counter>,
    pub zones: Gauge,
    pub records: Gauge,
}

fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "udp",
        Transport::Stream => "tcp",
    }
}

impl DnsMetrics {
    pub fn register(self: &std::sync::Arc<Self>, registry: &mut Registry) {
        registry.register("flashdns_responses", "DNS responses sent, by zone, rcode and transport", self.responses.clone());
        registry.register("flashdns_dropped", "Datagrams or messages not answered (not a DNS query)", self.dropped.clone());
        registry.register("flashdns_truncated", "UDP responses sent truncated (TC), to be retried over TCP", self.truncated.clone());
        registry.register("flashdns_rate_limited", "UDP responses over the rate limit, sent truncated (slip) or dropped", self.rate_limited.clone());
        registry.register("flashdns_zones", "Zones this node answers for", self.zones.clone());
        registry.register("flashdns_records", "Records in the zones this node answers for", self.records.clone());
    }

    /// The counter of responses like `outcome` over `transport`: found once per answer made
    /// and kept with it, since building the labels costs more than answering from the cache.
    pub fn responses(&self, outcome: &Outcome, transport: Transport) -> Counter {
        let labels = ResponseLabels {
            zone: outcome.zone.as_ref().map(|z| z.to_ascii()).unwrap_or_default(),
            rcode: outcome.rcode.to_string(),
            transport: transport_name(transport),
        };
        self.responses.get_or_create(&labels).clone()
    }

    /// Counts one response sent on `counter` (from `responses`).
    pub fn count(&self, counter: &Counter, truncated: bool) {
        counter.inc();
        if truncated {
            self.truncated.inc();
        }
    }

    pub fn rate_limited(&self, slipped: bool) {
        self.rate_limited.get_or_create(&SlipLabels { action: if slipped { "slip" } else { "drop" } }).inc();
    }

    pub fn dropped(&self, transport: Transport) {
        self.dropped.get_or_create(&TransportLabels { transport: transport_name(transport) }).inc();
    }
}
