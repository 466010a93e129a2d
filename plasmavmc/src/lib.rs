//! PlasmaVMC: tenants' virtual machines. The control plane (`api`) keeps flavours, images and
//! VMs (`model`) in chainfire; one node at a time places new VMs on nodes (`scheduler`), and
//! every hypervisor node runs the agent (`agent`), which fetches images, builds disks and runs
//! QEMU for the VMs placed on it, reporting each VM's state back as its status. Images are
//! imported into a platform bucket (`import`, `bucket`, `parts`) and read from there. The nodes
//! (`nodes`) say what they can hold; serial consoles are attached through any node (`console`).

pub mod agent;
pub mod api;
pub mod bucket;
pub mod config;
pub mod console;
pub mod error;
pub mod import;
pub mod model;
pub mod network;
pub mod nodes;
pub mod parts;
pub mod scheduler;
pub mod server;
pub mod storage;
