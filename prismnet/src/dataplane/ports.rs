//! Plugging a VPC's local ports in on this node: a veth pair for a machine or a pod (its end
//! created straight in the machine's namespace, and addressed and routed there when the binding
//! asks, as a CNI plugin does), or a VM's tap moved into the VPC's namespace; either way on the
//! bridge under the port's device name. Devices of ports no longer here are deleted.

use std::collections::BTreeSet;
use std::os::fd::AsRawFd;

use crate::dataplane::links::{Link, Net};
use crate::dataplane::netns;
use crate::dataplane::plan::{LocalPort, VpcPlan};
use crate::dataplane::vpc::{find, gone, is_port_device, Realiser};
use crate::error::{PrismnetError, Result};
use crate::model::port::Device;

impl Realiser {
    /// Each local port plugged in, up, on the bridge; stale port devices deleted.
    pub(crate) async fn ports(&self, net: &Net, vpc: &VpcPlan, links: &[Link], bridge: u32) -> Result<Vec<String>> {
        let mut changes = Vec::new();
        // One port that cannot be plugged in (its namespace gone, its tap missing) holds up
        // neither the others nor the rest of the VPC; the converge fails after them, naming it.
        let mut failed = Vec::new();
        for port in &vpc.local {
            let link = match find(links, &port.device) {
                Some(link) => link.clone(),
                None => match self.plug(net, vpc, port, bridge).await {
                    Ok(link) => {
                        changes.push(format!("port {} plugged in", port.device));
                        link
                    }
                    Err(e) => {
                        tracing::warn!(vni = vpc.vni, port = %port.key, error = %e, "cannot plug a port in");
                        failed.push(format!("port {}: {e}", port.key));
                        continue;
                    }
                },
            };
            if !link.up || link.controller != Some(bridge) || link.mtu != Some(vpc.mtu) {
                net.set_up(link.index, vpc.mtu, Some(bridge)).await?;
                changes.push(format!("port {} set up", port.device));
            }
        }
        let wanted: BTreeSet<&str> = vpc.local.iter().map(|p| p.device.as_str()).collect();
        for link in links.iter().filter(|l| is_port_device(&l.name) && !wanted.contains(l.name.as_str())) {
            net.delete(link.index).await?;
            tracing::info!(vni = vpc.vni, device = %link.name, "unplugged a port that is no longer here");
            changes.push(format!("stale device {} deleted", link.name));
        }
        if !failed.is_empty() {
            return Err(PrismnetError::Ports(failed.join("; ")));
        }
        Ok(changes)
    }

    /// Plugs `port` in and returns its link on the VPC's side. A veth whose configuring fails
    /// is deleted again: nothing half-made stays.
    async fn plug(&self, net: &Net, vpc: &VpcPlan, port: &LocalPort, bridge: u32) -> Result<Link> {
        if port.binding.device == Device::Tap {
            let tap = port.binding.ifname.as_deref().unwrap_or_default();
            let link = self.host.link(tap).await?.ok_or_else(|| {
                PrismnetError::io(format!("tap {tap}"), std::io::Error::from(std::io::ErrorKind::NotFound))
            })?;
            let ns = netns::open(&netns::resolve(&self.namespace(vpc.vni))).map_err(|e| PrismnetError::io("the VPC's namespace", e))?;
            self.host.move_to(link.index, ns.as_raw_fd(), &port.device).await?;
            tracing::info!(vni = vpc.vni, port = %port.key, device = %port.device, %tap, ip = %port.ip, "plugged a VM's tap in");
            return net.link(&port.device).await?.ok_or_else(|| gone(&port.device));
        }
        let binding = &port.binding;
        let path = netns::resolve(binding.netns.as_deref().unwrap_or_default());
        let machine = netns::open(&path).map_err(|e| PrismnetError::io("the machine's namespace", e))?;
        let ifname = binding.ifname.clone().unwrap_or_else(|| "eth0".into());
        net.add_veth(&port.device, &ifname, Some(port.mac), vpc.mtu, machine.as_raw_fd()).await?;
        let mut link = net.link(&port.device).await?.ok_or_else(|| gone(&port.device))?;
        // On the bridge before the machine's end is up: its first ARP request must not be
        // lost (the kernel would ask again only a second later).
        net.set_up(link.index, vpc.mtu, Some(bridge)).await?;
        (link.up, link.controller, link.mtu) = (true, Some(bridge), Some(vpc.mtu));
        if binding.configure {
            if let Err(e) = configure(&machine, &ifname, vpc, port).await {
                let _ = net.delete(link.index).await;
                return Err(e);
            }
        }
        tracing::info!(vni = vpc.vni, port = %port.key, device = %port.device, netns = %path.display(), %ifname, ip = %port.ip, "plugged a port in");
        Ok(link)
    }
}

/// The machine's end up, then addressed, with the subnet's gateway as its default route.
/// The address comes once the kernel has the link fully up: a packet sent before that (the
/// machine's first ARP request) would be dropped and asked again only a second later.
async fn configure(machine: &std::fs::File, ifname: &str, vpc: &VpcPlan, port: &LocalPort) -> Result<()> {
    let inside = Net::new(netns::netlink(Some(machine)).map_err(|e| PrismnetError::io("netlink in the machine's namespace", e))?);
    let link = inside.link(ifname).await?.ok_or_else(|| gone(ifname))?;
    inside.set_up(link.index, vpc.mtu, None).await?;
    if let Some(lo) = inside.link("lo").await?.filter(|l| !l.up) {
        inside.set_up(lo.index, 65536, None).await?;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !inside.link(ifname).await?.is_some_and(|l| l.operational) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    inside.add_address(link.index, port.ip, port.subnet.prefix_len()).await?;
    inside.default_route(port.gateway).await
}
