//! A histogram observed without a lock. prometheus-client's takes a mutex per observation, and
//! on a busy machine a holder preempted by the scheduler stalls every other thread observing
//! the same histogram: a dataplane counting each request would turn that into tail latency.
//! Here a bucket, the count and the sum are atomics; it is encoded exactly as prometheus-
//! client's histogram is (the same `_bucket{le}`, `_sum`, `_count` lines).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Upper bounds, ascending; a last bucket above them all (`+Inf`).
    bounds: Vec<f64>,
    /// Observations per bucket (not cumulative), one more than `bounds`.
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

impl AtomicHistogram {
    /// A histogram with these upper bounds (sorted here), plus `+Inf`.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let mut bounds: Vec<f64> = bounds.into_iter().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Self { inner: Arc::new(Inner { bounds, counts, count: AtomicU64::new(0), sum: AtomicU64::new(0f64.to_bits()) }) }
    }

    pub fn observe(&self, value: f64) {
        let inner = &*self.inner;
        // The first bucket whose bound is at least the value (`le`); NaN goes to `+Inf`.
        let bucket = if value.is_nan() { inner.bounds.len() } else { inner.bounds.partition_point(|b| *b < value) };
        inner.counts[bucket].fetch_add(1, Ordering::Relaxed);
        inner.count.fetch_add(1, Ordering::Relaxed);
        let _ = inner.sum.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + value).to_bits()));
    }

    /// Observations so far, and their sum.
    pub fn totals(&self) -> (u64, f64) {
        (self.inner.count.load(Ordering::Relaxed), f64::from_bits(self.inner.sum.load(Ordering::Relaxed)))
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let inner = &*self.inner;
        // prometheus-client's encoder accumulates the counts and writes infinity as `+Inf`.
        let buckets: Vec<(f64, u64)> = inner
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(inner.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let (count, sum) = self.totals();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).expect("encodes");
        out
    }

    #[test]
    fn it_encodes_as_prometheus_clients_histogram_does() {
        let bounds = [0.001, 0.01, 0.1];
        let (ours, theirs) = (AtomicHistogram::new(bounds), Histogram::new(bounds));
        for value in [0.0005, 0.001, 0.002, 0.05, 0.05, 3.0] {
            ours.observe(value);
            theirs.observe(value);
        }
        let (mut a, mut b) = (Registry::default(), Registry::default());
        a.register("latency", "x", ours.clone());
        b.register("latency", "x", theirs);
        assert_eq!(text(&a), text(&b));
        let (count, sum) = ours.totals();
        assert_eq!(count, 6);
        assert!((sum - 3.1035).abs() < 1e-9, "{sum}");
    }
}
