//! Volumes' counters on `/metrics`, per volume (and so per node, each node exporting its own):
//! operations, bytes and latency by operation, counted by a device wrapper around what a
//! session serves. A session's handles are resolved once, so counting costs a few atomics.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use photon_block::{BlockDevice, BlockError, BlockFuture, Extent};
use photon_runtime::histogram::AtomicHistogram;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    /// `org/project/volume`.
    volume: String,
    /// read, write, flush, trim, zero.
    op: &'static str,
}

fn latency() -> AtomicHistogram {
    // 20 µs .. ~2.6 s.
    AtomicHistogram::new(exponential_buckets(0.000_02, 2.0, 18))
}

#[derive(Clone)]
pub struct VolumeMetrics {
    ops: Family<OpLabels, Counter>,
    bytes: Family<OpLabels, Counter>,
    errors: Family<OpLabels, Counter>,
    latency: Family<OpLabels, AtomicHistogram, fn() -> AtomicHistogram>,
}

impl Default for VolumeMetrics {
    fn default() -> Self {
        Self {
            ops: Family::default(),
            bytes: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency),
        }
    }
}

const OPS: [&str; 5] = ["read", "write", "flush", "trim", "zero"];

/// One operation's handles.
#[derive(Clone)]
struct Handles {
    ops: Counter,
    bytes: Counter,
    errors: Counter,
    latency: AtomicHistogram,
}

impl VolumeMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register("lightningstor_volume_ops", "Volume operations served by this node, by volume and operation", self.ops.clone());
        registry.register("lightningstor_volume_bytes", "Bytes read, written, trimmed or zeroed, by volume and operation", self.bytes.clone());
        registry.register("lightningstor_volume_errors", "Volume operations that failed, by volume and operation", self.errors.clone());
        registry.register(
            "lightningstor_volume_op_duration_seconds",
            "Volume operation latency on this node, by volume and operation",
            self.latency.clone(),
        );
    }

    /// `inner` counted as volume `name` (`org/project/volume`).
    pub fn meter(&self, name: &str, inner: Arc<dyn BlockDevice>) -> Arc<dyn BlockDevice> {
        let handles = OPS.map(|op| {
            let labels = OpLabels { volume: name.to_string(), op };
            Handles {
                ops: self.ops.get_or_create(&labels).clone(),
                bytes: self.bytes.get_or_create(&labels).clone(),
                errors: self.errors.get_or_create(&labels).clone(),
                latency: self.latency.get_or_create(&labels).clone(),
            }
        });
        Arc::new(Metered { inner, handles })
    }
}

struct Metered {
    inner: Arc<dyn BlockDevice>,
    /// In the order of `OPS`.
    handles: [Handles; 5],
}

impl Metered {
    async fn count<T>(&self, op: usize, bytes: u64, work: BlockFuture<'_, T>) -> Result<T, BlockError> {
        let started = Instant::now();
        let result = work.await;
        let h = &self.handles[op];
        h.ops.inc();
        h.latency.observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => {
                h.bytes.inc_by(bytes);
            }
            Err(_) => {
                h.errors.inc();
            }
        }
        result
    }
}

impl BlockDevice for Metered {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn block_size(&self) -> u32 {
        self.inner.block_size()
    }
    fn read_only(&self) -> bool {
        self.inner.read_only()
    }
    fn read(&self, offset: u64, len: u32) -> BlockFuture<'_, Bytes> {
        Box::pin(self.count(0, u64::from(len), self.inner.read(offset, len)))
    }
    fn write(&self, offset: u64, data: Bytes, fua: bool) -> BlockFuture<'_, ()> {
        let len = data.len() as u64;
        Box::pin(self.count(1, len, self.inner.write(offset, data, fua)))
    }
    fn flush(&self) -> BlockFuture<'_, ()> {
        Box::pin(self.count(2, 0, self.inner.flush()))
    }
    fn trim(&self, offset: u64, len: u64) -> BlockFuture<'_, ()> {
        Box::pin(self.count(3, len, self.inner.trim(offset, len)))
    }
    fn write_zeroes(&self, offset: u64, len: u64, may_trim: bool, fua: bool) -> BlockFuture<'_, ()> {
        Box::pin(self.count(4, len, self.inner.write_zeroes(offset, len, may_trim, fua)))
    }
    fn extents(&self, offset: u64, len: u64) -> BlockFuture<'_, Vec<Extent>> {
        self.inner.extents(offset, len)
    }
}
