//! The engine against the in-memory reference device: the same random operations give the same
//! bytes; snapshots never change; clones read through and copy on write; holes stay holes.

use super::*;
use crate::volumes::map::{MemMap, Parent};
use photon_block::MemDevice;

const SIZE: u64 = 3 * EXTENT_BYTES + 12 * 4096;

struct Rig {
    _dir: tempfile::TempDir,
    map: Arc<MemMap>,
    replicas: Arc<ExtentReplicas>,
}

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let extents = Arc::new(crate::volumes::extents::ExtentStore::open(&dir.path().join("x")).unwrap());
        let fences = Arc::new(crate::volumes::fences::Fences::open(dir.path().join("fences.json")));
        let replicas = Arc::new(ExtentReplicas::new(extents, fences, "n1".into(), Vec::new(), std::time::Duration::from_secs(5)));
        Self { _dir: dir, map: Arc::new(MemMap::default()), replicas }
    }

    async fn open(&self, uid: &str, at: Option<u32>, parent: Option<Parent>) -> Arc<VolumeEngine> {
        VolumeEngine::open(uid, SIZE, 1, at, parent, self.map.clone(), self.replicas.clone()).await.unwrap()
    }
}

/// A small deterministic generator (the tests' own, so runs repeat).
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Applies `count` random writes, zeroes and trims (some across extents, some unaligned) to
/// both devices.
async fn churn(rng: &mut Seeded, count: usize, a: &dyn BlockDevice, b: &dyn BlockDevice) {
    for _ in 0..count {
        let offset = rng.below(SIZE - 1);
        let len = (1 + rng.below(3 * 65536)).min(SIZE - offset);
        match rng.below(5) {
            0 => {
                a.write_zeroes(offset, len, true, false).await.unwrap();
                b.write_zeroes(offset, len, true, false).await.unwrap();
            }
            1 => {
                a.trim(offset, len).await.unwrap();
                b.trim(offset, len).await.unwrap();
            }
            _ => {
                let data: Bytes = (0..len).map(|_| rng.next() as u8).collect::<Vec<u8>>().into();
                a.write(offset, data.clone(), false).await.unwrap();
                b.write(offset, data, false).await.unwrap();
            }
        }
    }
}

async fn whole(device: &dyn BlockDevice) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < device.size() {
        let n = (device.size() - at).min(1 << 20) as u32;
        out.extend_from_slice(&device.read(at, n).await.unwrap());
        at += u64::from(n);
    }
    out
}

#[tokio::test]
async fn random_operations_read_back_as_on_the_reference_device() {
    let rig = Rig::new();
    let volume = rig.open("v1", None, None).await;
    let reference = MemDevice::new(SIZE);
    let mut rng = Seeded(0x5eed);
    churn(&mut rng, 300, volume.as_ref(), &reference).await;
    assert!(whole(volume.as_ref()).await == whole(&reference).await, "the volume differs from the reference");
    volume.flush().await.unwrap();
    // Reopened from the map and the disk: the same.
    let again = rig.open("v1", None, None).await;
    assert!(whole(again.as_ref()).await == whole(&reference).await, "reopened, the volume differs");
}

#[tokio::test]
async fn a_snapshot_never_changes_while_the_volume_is_written() {
    let rig = Rig::new();
    let volume = rig.open("v2", None, None).await;
    let reference = MemDevice::new(SIZE);
    let mut rng = Seeded(42);
    churn(&mut rng, 100, volume.as_ref(), &reference).await;
    let frozen = whole(&reference).await;
    let epoch = volume.snapshot().await.unwrap();
    let snapshot = rig.open("v2", Some(epoch), None).await;
    assert!(snapshot.read_only());
    assert!(matches!(snapshot.write(0, Bytes::from_static(b"x"), false).await, Err(BlockError::ReadOnly(_))));
    churn(&mut rng, 200, volume.as_ref(), &reference).await;
    assert!(whole(snapshot.as_ref()).await == frozen, "the snapshot changed");
    assert!(whole(volume.as_ref()).await == whole(&reference).await, "the volume differs from the reference");
    // A second snapshot, and the first is still what it was.
    let second = volume.snapshot().await.unwrap();
    assert!(second > epoch);
    churn(&mut rng, 50, volume.as_ref(), &reference).await;
    assert!(whole(snapshot.as_ref()).await == frozen);
}

#[tokio::test]
async fn a_clone_reads_through_its_parent_and_copies_what_it_writes() {
    let rig = Rig::new();
    let parent = rig.open("p", None, None).await;
    let reference = MemDevice::new(SIZE);
    let mut rng = Seeded(7);
    churn(&mut rng, 80, parent.as_ref(), &reference).await;
    let epoch = parent.snapshot().await.unwrap();
    let base = whole(&reference).await;
    let clone = rig.open("c", None, Some(Parent { uid: "p".into(), epoch })).await;
    assert!(whole(clone.as_ref()).await == base, "a clone starts as its source");
    // Writing the clone leaves the parent alone, and the parent's later writes stay out of it.
    let clone_reference = MemDevice::new(SIZE);
    clone_reference.write(0, Bytes::from(base.clone()), false).await.unwrap();
    churn(&mut rng, 80, clone.as_ref(), &clone_reference).await;
    churn(&mut rng, 40, parent.as_ref(), &reference).await;
    assert!(whole(clone.as_ref()).await == whole(&clone_reference).await, "the clone differs from its reference");
    let snapshot = rig.open("p", Some(epoch), None).await;
    assert!(whole(snapshot.as_ref()).await == base, "the source snapshot changed");
}

#[tokio::test]
async fn holes_are_reported_and_writes_allocate_only_what_they_touch() {
    let rig = Rig::new();
    let volume = rig.open("v3", None, None).await;
    let all = volume.extents(0, SIZE).await.unwrap();
    assert_eq!(all, vec![Extent { len: SIZE, hole: true, zero: true }]);
    volume.write(EXTENT_BYTES + 8192, Bytes::from(vec![1u8; 4096]), false).await.unwrap();
    let map = volume.extents(0, SIZE).await.unwrap();
    assert_eq!(
        map,
        vec![
            Extent { len: EXTENT_BYTES + 8192, hole: true, zero: true },
            Extent { len: 4096, hole: false, zero: false },
            Extent { len: SIZE - EXTENT_BYTES - 12288, hole: true, zero: true },
        ]
    );
    let part = volume.extents(EXTENT_BYTES + 8192 + 100, 10).await.unwrap();
    assert_eq!(part, vec![Extent { len: 10, hole: false, zero: false }]);
    assert!(matches!(volume.read(SIZE - 1, 2).await, Err(BlockError::OutOfRange(_))));
    assert!(matches!(volume.write(u64::MAX, Bytes::from_static(b"xy"), false).await, Err(BlockError::OutOfRange(_))));
}
