//! PrismNET: tenants' networks. The control plane (`api`) keeps VPCs, subnets, ports, security
//! groups, routers and floating IPs (`model`) in chainfire, with the values the server picks
//! (`ipam`); every node with the dataplane on follows them and realises the VPCs its
//! ports need on its own kernel (`dataplane`); one node keeps ports' names in FlashDNS (`dns`).

pub mod api;
pub mod config;
pub mod dataplane;
pub mod dns;
pub mod error;
pub mod ipam;
pub mod model;
pub mod server;
