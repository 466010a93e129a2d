//! Block volumes: a tenant's disks, served from the same storage nodes as objects. A volume's
//! bytes are fixed-size extents (`extents`: in-place files with per-block checksums) found
//! through its extent map in flaredb (`map`: versions by epoch, for snapshots and clones); the
//! engine (`engine`) is the volume as a block device that the frontends of `photon-block`
//! (NBD, iSCSI) serve. Volumes, snapshots and attachments are tenant resources in chainfire
//! (`model`, `api`); what creating them does to the data is `service`; what an NBD client may
//! open is `exports`, and an iSCSI initiator `iscsi`.

pub mod engine;
pub mod exports;
pub mod extents;
pub mod fences;
pub mod idle_repair;
pub mod images;
pub mod iscsi;
pub mod api;
pub mod map;
pub mod metrics;
pub mod model;
pub mod replicas;
pub mod service;

/// A lock that outlives a panic elsewhere (what it guards is replaced whole, never left
/// half-made).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
