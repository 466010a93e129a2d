//! A VPC's way out on this node (`plan::ExternalPlan`): a veth pair between the VPC's namespace
//! (`up0`, holding the VPC's transit address, the VPC's default route) and the node's
//! (`pu<vni>`, routing the transit address and the VPC's floating IPs back in), the VPC's NAT
//! rules (`filter.rs`), and, once per node, the translation of transit addresses to the node's
//! own on the external interface, forwarding on, and ARP answered there for every floating IP
//! of a port on this node.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use crate::dataplane::filter::{self, UPLINK};
use crate::dataplane::links::Net;
use crate::dataplane::plan::{Plan, VpcPlan};
use crate::dataplane::vpc::{gone, Realiser};
use crate::error::{PrismnetError, Result};

/// The node's end of every uplink: the same link-local address on each (each VPC reaches it
/// on-link through its own uplink).
pub const UPLINK_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);

/// The node's end of VPC `vni`'s uplink.
pub fn host_end(vni: u32) -> String {
    format!("pu{vni}")
}

impl Realiser {
    /// Converges the VPC's uplink to its plan: made, addressed and routed while the VPC has a way
    /// out here; gone (the pair with it) when it has none.
    pub(crate) async fn uplink(&self, net: &Net, ns: &std::fs::File, vpc: &VpcPlan) -> Result<Vec<String>> {
        let mut changes = Vec::new();
        let name = host_end(vpc.vni);
        let existing = self.host.link(&name).await?;
        let Some(external) = &vpc.external else {
            if let Some(link) = existing {
                self.host.delete(link.index).await?;
                changes.push("uplink removed".to_string());
            }
            return Ok(changes);
        };
        let host = match existing {
            Some(link) => link,
            None => {
                self.host.add_veth(&name, UPLINK, None, vpc.mtu, ns.as_raw_fd()).await?;
                changes.push("uplink created".to_string());
                self.host.link(&name).await?.ok_or_else(|| gone(&name))?
            }
        };
        if !host.up {
            self.host.set_up(host.index, vpc.mtu, None).await?;
        }
        let inside = net.link(UPLINK).await?.ok_or_else(|| gone(UPLINK))?;
        if !inside.up {
            net.set_up(inside.index, vpc.mtu, None).await?;
        }
        changes.extend(self.host.sync_addresses(host.index, &[(UPLINK_GATEWAY, 32)].into(), &name).await?);
        let mut routes: BTreeSet<(Ipv4Addr, u8, Option<Ipv4Addr>)> = [(external.transit, 32, None)].into();
        routes.extend(external.floating.iter().map(|(floating, _)| (*floating, 32, Some(external.transit))));
        changes.extend(self.host.sync_routes(host.index, &routes, &name).await?);
        changes.extend(net.sync_addresses(inside.index, &[(external.transit, 32)].into(), UPLINK).await?);
        let default: BTreeSet<_> = [(Ipv4Addr::UNSPECIFIED, 0, Some(UPLINK_GATEWAY))].into();
        changes.extend(net.sync_routes(inside.index, &default, UPLINK).await?);
        Ok(changes)
    }

    /// What the node itself does for every VPC's way out: forwarding, the translation of
    /// transit addresses (once per process), and ARP answered for exactly the floating IPs of
    /// `plan`.
    pub async fn host_external(&self, plan: &Plan) -> Result<Vec<String>> {
        let Some(interface) = &self.external else { return Ok(Vec::new()) };
        let mut changes = Vec::new();
        let floating: BTreeSet<Ipv4Addr> =
            plan.vpcs.values().filter_map(|v| v.external.as_ref()).flat_map(|e| e.floating.iter().map(|(f, _)| *f)).collect();
        let needed = plan.vpcs.values().any(|v| v.external.is_some());
        if needed && !self.host_rules.swap(true, Ordering::SeqCst) {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| PrismnetError::io("turning forwarding on", e))?;
            // ARP for a floating IP answered at once, not after the kernel's random proxy delay
            // (up to 0.8 s), which a new floating IP's first packets would wait out.
            let delay = format!("/proc/sys/net/ipv4/neigh/{interface}/proxy_delay");
            std::fs::write(&delay, "0").map_err(|e| PrismnetError::io(format!("setting {delay}"), e))?;
            if let Err(e) = filter::apply_here(&filter::host_ruleset(interface)) {
                self.host_rules.store(false, Ordering::SeqCst);
                return Err(e);
            }
            changes.push(format!("forwarding on, transit addresses translated on {interface}"));
        }
        let link = self.host.link(interface).await?.ok_or_else(|| {
            PrismnetError::io(format!("the external interface {interface}"), std::io::Error::from(std::io::ErrorKind::NotFound))
        })?;
        let have: BTreeSet<Ipv4Addr> = self.host.proxies(link.index).await?.into_iter().collect();
        for ip in floating.difference(&have) {
            self.host.add_proxy(link.index, *ip).await?;
            changes.push(format!("answering ARP for floating IP {ip} on {interface}"));
        }
        for ip in have.difference(&floating) {
            self.host.del_proxy(link.index, *ip).await?;
            changes.push(format!("no longer answering ARP for {ip} on {interface}"));
        }
        Ok(changes)
    }
}
