//! Converging one VPC on this node to its plan: its namespace, its bridge (the gateway of every
//! subnet, with the VPC's gateway MAC), its VXLAN device, each local port's veth, and the
//! forwarding and neighbour entries of every remote port. Each step looks at what is there and
//! changes only what differs, so a converge is safe to repeat and leaves flowing traffic alone.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use crate::dataplane::links::{Fdb, Link, Net};
use crate::dataplane::{filter, lock, netns};
use crate::dataplane::plan::VpcPlan;
use crate::error::{PrismnetError, Result};

/// The bridge and the VXLAN device inside every VPC's namespace.
pub const BRIDGE: &str = "br0";
pub const VXLAN: &str = "vxlan0";

/// What is the same for every VPC of this node.
pub struct Realiser {
    /// Netlink in the node's own namespace (the underlay).
    pub host: Net,
    pub vtep: Ipv4Addr,
    pub netns_prefix: String,
    /// The node's interface on the external network (routers and floating IPs), if any.
    pub external: Option<String>,
    /// By VNI: the rule set last applied.
    pub applied: Mutex<HashMap<u32, filter::Ruleset>>,
    /// Whether the node's own rules for ways out were applied by this process.
    pub host_rules: std::sync::atomic::AtomicBool,
}

/// Whether `name` is a port device's (`plan::device_name`).
pub(crate) fn is_port_device(name: &str) -> bool {
    name.len() == 11 && name.starts_with('p') && name[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn find<'a>(links: &'a [Link], name: &str) -> Option<&'a Link> {
    links.iter().find(|l| l.name == name)
}

impl Realiser {
    pub fn namespace(&self, vni: u32) -> String {
        format!("{}{vni}", self.netns_prefix)
    }

    /// How many filter rules the VPC's tables hold, as last applied.
    pub fn rule_count(&self, vni: u32) -> usize {
        lock(&self.applied).get(&vni).map(filter::Ruleset::rule_count).unwrap_or(0)
    }

    /// The VNIs of the VPC namespaces this node has now.
    pub fn present(&self) -> Vec<u32> {
        netns::list(&self.netns_prefix).iter().filter_map(|n| n.strip_prefix(&self.netns_prefix)?.parse().ok()).collect()
    }

    /// Removes the VPC's namespace and everything in it (its ports' veths with it).
    pub async fn remove(&self, vni: u32) -> Result<bool> {
        let name = self.namespace(vni);
        let existed = self.present().contains(&vni);
        lock(&self.applied).remove(&vni);
        netns::remove(&name).map_err(|e| PrismnetError::io(format!("removing namespace {name}"), e))?;
        if let Some(stray) = self.host.link(&format!("pnx{vni}")).await? {
            self.host.delete(stray.index).await?;
        }
        Ok(existed)
    }

    /// Converges the VPC; returns what it changed (nothing: it already was as planned).
    pub async fn converge(&self, vpc: &VpcPlan) -> Result<Vec<String>> {
        let name = self.namespace(vpc.vni);
        let mut changes = Vec::new();
        let created = netns::ensure(&name).map_err(|e| PrismnetError::io(format!("creating namespace {name}"), e))?;
        let ns = netns::open(&netns::resolve(&name)).map_err(|e| PrismnetError::io("opening the VPC's namespace", e))?;
        if created {
            changes.push("created the namespace".to_string());
            let settings = [
                ("net/ipv4/ip_forward", "1"),
                // The gateway routes between subnets on the same bridge: no redirects.
                ("net/ipv4/conf/all/send_redirects", "0"),
                ("net/ipv4/conf/default/send_redirects", "0"),
            ];
            for (key, value) in settings {
                netns::sysctl(&ns, key, value).map_err(|e| PrismnetError::io("setting up the VPC's namespace", e))?;
            }
        }
        let net = Net::new(netns::netlink(Some(&ns)).map_err(|e| PrismnetError::io("netlink in the VPC's namespace", e))?);
        let mut links = net.links().await?;
        if let Some(lo) = find(&links, "lo").filter(|l| !l.up) {
            net.set_up(lo.index, 65536, None).await?;
        }

        if find(&links, BRIDGE).is_none() {
            net.add_bridge(BRIDGE, vpc.gateway_mac, vpc.mtu).await?;
            changes.push("created the bridge".to_string());
            links = net.links().await?;
        }
        let bridge = find(&links, BRIDGE).cloned().ok_or_else(|| gone(BRIDGE))?;
        if !bridge.up || bridge.mtu != Some(vpc.mtu) || bridge.mac.as_deref() != Some(&vpc.gateway_mac[..]) {
            net.set_up(bridge.index, vpc.mtu, None).await?;
            changes.push("set the bridge up".to_string());
        }

        if find(&links, VXLAN).is_none() {
            self.plug_vxlan(vpc, &ns).await?;
            changes.push("created the VXLAN device".to_string());
            links = net.links().await?;
        }
        let vxlan = find(&links, VXLAN).cloned().ok_or_else(|| gone(VXLAN))?;
        if !vxlan.up || vxlan.controller != Some(bridge.index) || vxlan.mtu != Some(vpc.mtu) {
            net.set_up(vxlan.index, vpc.mtu, Some(bridge.index)).await?;
            net.no_learning(vxlan.index).await?;
            changes.push("put the VXLAN device on the bridge".to_string());
        }

        changes.extend(self.gateways(&net, vpc, bridge.index).await?);
        // Remote ports first (they open nothing: each node filters its own ports, and a peer
        // on another node answering a new port's first packets needs them at once); rules
        // before local ports: a port is never plugged in unfiltered.
        changes.extend(self.remotes(&net, &ns, vpc, vxlan.index, bridge.index).await?);
        changes.extend(self.filter(&ns, vpc)?);
        changes.extend(self.ports(&net, vpc, &links, bridge.index).await?);
        changes.extend(self.uplink(&net, &ns, vpc).await?);
        Ok(changes)
    }

    /// The VPC's nftables rules: what changed since this process last applied them, or all of
    /// them (the first time, when the tables' shape changed, or when an operator removed one).
    fn filter(&self, ns: &std::fs::File, vpc: &VpcPlan) -> Result<Vec<String>> {
        let rules = filter::Ruleset::build(vpc);
        if vpc.local.iter().any(|p| p.port_security) {
            // Bridged traffic through the inet hooks, where security groups filter it: without
            // br_netfilter a filtered port would go unfiltered, so it is an error, not a warning.
            netns::sysctl(ns, "net/bridge/bridge-nf-call-iptables", "1").map_err(|e| {
                PrismnetError::io("br_netfilter is needed to filter ports (modprobe br_netfilter)", e)
            })?;
        }
        let mut applied = lock(&self.applied);
        let incremental = match applied.get(&vpc.vni) {
            // Nothing to filter here, nothing was: nothing to check (nor nft to ask).
            Some(old) if *old == rules && rules.tables().is_empty() => return Ok(Vec::new()),
            Some(old) if *old == rules => {
                let mut ours: Vec<String> = filter::listed_tables(ns)?
                    .into_iter()
                    .filter(|t| [filter::TABLE, filter::L2_TABLE, filter::NAT_TABLE].contains(&t.as_str()))
                    .collect();
                ours.sort();
                if ours == rules.tables() {
                    return Ok(Vec::new());
                }
                None
            }
            Some(old) => rules.diff(old),
            None => None,
        };
        let change = match incremental {
            Some(commands) if commands.is_empty() => {
                applied.insert(vpc.vni, rules);
                return Ok(Vec::new());
            }
            Some(commands) => {
                let count = commands.len();
                filter::apply(ns, &serde_json::json!({"nftables": commands}))?;
                format!("{count} filter changes applied ({} rules)", rules.rule_count())
            }
            None => match filter::apply(ns, &rules.full()) {
                // Without nft there are no tables to remove, and this VPC needs none here.
                Err(PrismnetError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound && rules.tables().is_empty() => {
                    applied.insert(vpc.vni, rules);
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
                Ok(()) => format!("{} filter rules applied", rules.rule_count()),
            },
        };
        applied.insert(vpc.vni, rules);
        Ok(vec![change])
    }

    /// The VXLAN device is made in the node's namespace, where its tunnel socket stays, and
    /// moved into the VPC's.
    async fn plug_vxlan(&self, vpc: &VpcPlan, ns: &std::fs::File) -> Result<()> {
        let host_name = format!("pnx{}", vpc.vni);
        if self.host.link(&host_name).await?.is_none() {
            self.host.add_vxlan(&host_name, vpc.vni, self.vtep, vpc.mtu).await?;
        }
        let link = self.host.link(&host_name).await?.ok_or_else(|| gone(&host_name))?;
        self.host.move_to(link.index, ns.as_raw_fd(), VXLAN).await
    }

    /// Every subnet's gateway address on the bridge, and no other.
    async fn gateways(&self, net: &Net, vpc: &VpcPlan, bridge: u32) -> Result<Vec<String>> {
        let want: BTreeSet<(Ipv4Addr, u8)> = vpc.subnets.iter().map(|s| (s.gateway, s.cidr.prefix_len())).collect();
        net.sync_addresses(bridge, &want, "the bridge").await
    }

    /// For every remote port: where its MAC is (the VXLAN device's entry to its node, the
    /// bridge's entry to the VXLAN device) and its address's MAC (answered by the VXLAN device
    /// for ARP, and the gateway's own entry for routing). Nothing else.
    async fn remotes(&self, net: &Net, ns: &std::fs::File, vpc: &VpcPlan, vxlan: u32, bridge: u32) -> Result<Vec<String>> {
        let mut changes = Vec::new();
        let want: BTreeSet<Fdb> = vpc
            .remote
            .iter()
            .flat_map(|r| [Fdb { mac: r.mac, dst: Some(r.vtep), master: false }, Fdb { mac: r.mac, dst: None, master: true }])
            .collect();
        let have: BTreeSet<Fdb> = net.fdb(vxlan).await?.into_iter().collect();
        for entry in want.difference(&have) {
            net.add_fdb(vxlan, entry).await?;
            changes.push(format!("forwarding entry {entry:?} added"));
        }
        for entry in have.difference(&want) {
            net.del_fdb(vxlan, entry).await?;
            changes.push(format!("forwarding entry {entry:?} removed"));
        }
        let want: BTreeSet<(Ipv4Addr, [u8; 6])> = vpc.remote.iter().map(|r| (r.ip, r.mac)).collect();
        let mut new = Vec::new();
        for device in [vxlan, bridge] {
            let have: BTreeSet<(Ipv4Addr, [u8; 6])> = net.neighbours(device).await?.into_iter().collect();
            for (ip, mac) in want.difference(&have) {
                net.add_neighbour(device, *ip, *mac).await?;
                changes.push(format!("neighbour {ip} added on link {device}"));
                if device == vxlan {
                    new.push((*ip, *mac));
                }
            }
            // (An entry with a stale MAC was replaced above.)
            for (ip, _) in have.difference(&want) {
                if !want.iter().any(|(wanted, _)| wanted == ip) {
                    net.del_neighbour(device, *ip).await?;
                    changes.push(format!("neighbour {ip} removed from link {device}"));
                }
            }
        }
        // Announced on the bridge (gratuitous ARP), best effort: a machine here that asked
        // for the address too early otherwise waits for its own retry, a second later.
        if !new.is_empty() {
            let announced = netns::within(ns, || {
                for (ip, mac) in &new {
                    photon_net::announce::announce_on(bridge, *mac, (*ip).into(), 1).map_err(std::io::Error::other)?;
                }
                Ok(())
            });
            if let Err(e) = announced {
                tracing::debug!(vni = vpc.vni, error = %e, "cannot announce new remote ports");
            }
        }
        Ok(changes)
    }
}

pub(crate) fn gone(name: &str) -> PrismnetError {
    PrismnetError::io(format!("{name} vanished while being set up"), std::io::Error::from(std::io::ErrorKind::NotFound))
}
