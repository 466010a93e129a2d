//! Block-device frontends: what a volume looks like to an initiator, over one trait
//! (`BlockDevice`) that the storage engine implements. The NBD server (`nbd`) speaks to QEMU,
//! libnbd and the kernel's client; the iSCSI target (`iscsi`) to libiscsi, QEMU and the Linux
//! initiator. Nothing in this crate knows how or where a volume's bytes are stored.

mod accept;
pub mod device;
pub mod iscsi;
pub mod nbd;
mod next_reply;

pub use device::{BlockDevice, BlockError, BlockFuture, Extent, MemDevice};
