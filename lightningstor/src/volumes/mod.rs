//! Block volumes: a tenant's disks, served from the same storage nodes as objects. A volume's
//! bytes are fixed-size extents (`extents`: in-place files with per-block checksums) found
//! through its extent map in flaredb (`map`: versions by epoch, for snapshots and clones); the
//! engine (`engine`) is the volume as a block device that the frontends of `photon-block`
//! (NBD, iSCSI) serve.

pub mod engine;
pub mod extents;
pub mod map;
