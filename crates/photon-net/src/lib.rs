//! Kernel networking the services share: announcing that an address is at a MAC on a link
//! (FiberLB's VIPs after a failover, PrismNET's ports on other nodes).

pub mod announce;
