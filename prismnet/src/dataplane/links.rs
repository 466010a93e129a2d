//! The kernel objects a VPC is made of, through netlink in one namespace: links (bridge,
//! VXLAN, veth), their addresses, forwarding entries (FDB) and neighbour entries. Each call is
//! one request; the reconciler (`vpc.rs`) decides what to ask for.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVxlan, RouteMessageBuilder};

use crate::error::{PrismnetError, Result};

/// The UDP port VXLAN uses (IANA).
pub const VXLAN_PORT: u16 = 4789;

/// A link as the kernel lists it.
#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The bridge it is a port of.
    pub controller: Option<u32>,
    pub mac: Option<Vec<u8>>,
    pub mtu: Option<u32>,
    pub up: bool,
    /// The kernel has finished bringing it up (RFC 2863 operational state "up"): it sends.
    pub operational: bool,
}

impl Link {
    fn from_message(message: LinkMessage) -> Self {
        let mut link = Link {
            index: message.header.index,
            name: String::new(),
            controller: None,
            mac: None,
            mtu: None,
            up: message.header.flags.contains(rtnetlink::packet_route::link::LinkFlags::Up),
            operational: false,
        };
        for attribute in message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Controller(c) => link.controller = Some(c),
                LinkAttribute::Address(mac) => link.mac = Some(mac),
                LinkAttribute::Mtu(mtu) => link.mtu = Some(mtu),
                LinkAttribute::OperState(state) => link.operational = state == rtnetlink::packet_route::link::State::Up,
                _ => {}
            }
        }
        link
    }
}

/// A forwarding entry of a VXLAN device or a bridge: which MAC is where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fdb {
    pub mac: [u8; 6],
    /// The remote tunnel end (VXLAN entries).
    pub dst: Option<Ipv4Addr>,
    /// A bridge's entry (`master`), else the device's own (`self`).
    pub master: bool,
}

/// Netlink in one namespace.
#[derive(Clone)]
pub struct Net {
    handle: Handle,
}

impl Net {
    pub fn new(handle: Handle) -> Self {
        Self { handle }
    }

    pub async fn links(&self) -> Result<Vec<Link>> {
        let messages: Vec<LinkMessage> =
            self.handle.link().get().execute().try_collect().await.map_err(|e| PrismnetError::netlink("listing links", e))?;
        Ok(messages.into_iter().map(Link::from_message).collect())
    }

    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        Ok(self.links().await?.into_iter().find(|l| l.name == name))
    }

    /// Creates a bridge with `mac` (the VPC's gateway MAC), no STP and no forwarding delay.
    pub async fn add_bridge(&self, name: &str, mac: [u8; 6], mtu: u32) -> Result<()> {
        let message = LinkBridge::new(name).forward_delay(0).address(mac.to_vec()).mtu(mtu).build();
        self.handle.link().add(message).execute().await.map_err(|e| PrismnetError::netlink(format!("creating bridge {name}"), e))
    }

    /// Creates a VXLAN device that learns nothing and answers ARP from its neighbour entries.
    pub async fn add_vxlan(&self, name: &str, vni: u32, local: Ipv4Addr, mtu: u32) -> Result<()> {
        let message =
            LinkVxlan::new(name, vni).local(local).port(VXLAN_PORT).learning(false).proxy(true).ttl(64).mtu(mtu).build();
        self.handle.link().add(message).execute().await.map_err(|e| PrismnetError::netlink(format!("creating VXLAN device {name} (VNI {vni})"), e))
    }

    /// Moves a link into the namespace open at `ns`, renaming it there.
    pub async fn move_to(&self, index: u32, ns: RawFd, name: &str) -> Result<()> {
        let message = LinkMessageBuilder::<LinkUnspec>::new().index(index).setns_by_fd(ns).name(name.to_string()).build();
        self.handle.link().set(message).execute().await.map_err(|e| PrismnetError::netlink(format!("moving link {index} as {name}"), e))
    }

    /// A veth pair: `name` here (up, on no bridge yet), its peer created directly in the
    /// namespace open at `peer_ns` as `peer` (with `peer_mac`, else the kernel's).
    pub async fn add_veth(&self, name: &str, peer: &str, peer_mac: Option<[u8; 6]>, mtu: u32, peer_ns: RawFd) -> Result<()> {
        let mut peer_message = LinkMessageBuilder::<LinkUnspec>::new().name(peer.to_string()).mtu(mtu).setns_by_fd(peer_ns);
        if let Some(mac) = peer_mac {
            peer_message = peer_message.address(mac.to_vec());
        }
        let peer_message = peer_message.build();
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(rtnetlink::packet_route::link::InfoKind::Veth)
            .name(name.to_string())
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_message)))
            .build();
        self.handle.link().add(message).execute().await.map_err(|e| PrismnetError::netlink(format!("creating veth {name} (machine end {peer})"), e))
    }

    /// Sets a link up, its MTU and (if given) its bridge.
    pub async fn set_up(&self, index: u32, mtu: u32, controller: Option<u32>) -> Result<()> {
        let mut message = LinkMessageBuilder::<LinkUnspec>::new().index(index).mtu(mtu).up();
        if let Some(controller) = controller {
            message = message.controller(controller);
        }
        self.handle.link().set(message.build()).execute().await.map_err(|e| PrismnetError::netlink(format!("setting link {index} up"), e))
    }

    /// A bridge port that learns no MACs (its entries are programmed).
    pub async fn no_learning(&self, index: u32) -> Result<()> {
        let message = LinkBridgePort::new(index).learning(false).build();
        self.handle.link().set_port(message).execute().await.map_err(|e| PrismnetError::netlink(format!("turning learning off on link {index}"), e))
    }

    pub async fn delete(&self, index: u32) -> Result<()> {
        self.handle.link().del(index).execute().await.map_err(|e| PrismnetError::netlink(format!("deleting link {index}"), e))
    }

    /// The IPv4 addresses of a link, with their prefix lengths.
    pub async fn addresses(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| PrismnetError::netlink("listing addresses", e))?;
        let mut found = Vec::new();
        for message in messages {
            for attribute in &message.attributes {
                if let AddressAttribute::Address(IpAddr::V4(ip)) = attribute {
                    found.push((*ip, message.header.prefix_len));
                }
            }
        }
        Ok(found)
    }

    pub async fn add_address(&self, index: u32, ip: Ipv4Addr, prefix_len: u8) -> Result<()> {
        self.handle
            .address()
            .add(index, IpAddr::V4(ip), prefix_len)
            .replace()
            .execute()
            .await
            .map_err(|e| PrismnetError::netlink(format!("adding {ip}/{prefix_len}"), e))
    }

    pub async fn del_address(&self, index: u32, ip: Ipv4Addr, prefix_len: u8) -> Result<()> {
        let messages: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(IpAddr::V4(ip))
            .execute()
            .try_collect()
            .await
            .map_err(|e| PrismnetError::netlink("listing addresses", e))?;
        for message in messages.into_iter().filter(|m| m.header.prefix_len == prefix_len) {
            self.handle.address().del(message).execute().await.map_err(|e| PrismnetError::netlink(format!("removing {ip}/{prefix_len}"), e))?;
        }
        Ok(())
    }

    /// Makes link `index`'s IPv4 addresses exactly `want`; what it changed (`what`: the link,
    /// for the messages).
    pub async fn sync_addresses(&self, index: u32, want: &BTreeSet<(Ipv4Addr, u8)>, what: &str) -> Result<Vec<String>> {
        let have: BTreeSet<(Ipv4Addr, u8)> = self.addresses(index).await?.into_iter().collect();
        let mut changes = Vec::new();
        for (ip, len) in want.difference(&have) {
            self.add_address(index, *ip, *len).await?;
            changes.push(format!("{ip}/{len} added on {what}"));
        }
        for (ip, len) in have.difference(want) {
            self.del_address(index, *ip, *len).await?;
            changes.push(format!("{ip}/{len} removed from {what}"));
        }
        Ok(changes)
    }

    /// Makes the routes through link `index` exactly `want` (destination, length, gateway).
    pub async fn sync_routes(&self, index: u32, want: &BTreeSet<(Ipv4Addr, u8, Option<Ipv4Addr>)>, what: &str) -> Result<Vec<String>> {
        let have: BTreeSet<(Ipv4Addr, u8, Option<Ipv4Addr>)> = self.routes(index).await?.into_iter().collect();
        let mut changes = Vec::new();
        for (dst, len, gateway) in want.difference(&have) {
            self.add_route(index, *dst, *len, *gateway).await?;
            changes.push(format!("route to {dst}/{len} added on {what}"));
        }
        for (dst, len, _) in have.difference(want) {
            self.del_route(index, *dst, *len).await?;
            changes.push(format!("route to {dst}/{len} removed from {what}"));
        }
        Ok(changes)
    }

    /// Forwarding entries of link `index` we program (permanent ones; learned and local ones
    /// are the kernel's).
    pub async fn fdb(&self, index: u32) -> Result<Vec<Fdb>> {
        let messages: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Bridge)
            .execute()
            .try_collect()
            .await
            .map_err(|e| PrismnetError::netlink("listing forwarding entries", e))?;
        let mut found = Vec::new();
        for message in messages.into_iter().filter(|m| m.header.ifindex == index) {
            let (mut mac, mut dst, mut master) = (None, None, false);
            for attribute in &message.attributes {
                match attribute {
                    NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => mac = <[u8; 6]>::try_from(l.as_slice()).ok(),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => dst = Some(*ip),
                    // In a bridge-family message the address comes as bytes.
                    NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                        dst = <[u8; 4]>::try_from(bytes.as_slice()).ok().map(Ipv4Addr::from)
                    }
                    // The bridge's entries name it (the device's own carry NTF_SELF).
                    NeighbourAttribute::Controller(_) => master = true,
                    _ => {}
                }
            }
            // Ours: the bridge's static entries (its permanent ones are its ports' own MACs)
            // and the device's permanent entries toward a tunnel end.
            let ours = if master {
                message.header.state == NeighbourState::Noarp
            } else {
                message.header.flags.contains(NeighbourFlags::Own) && message.header.state == NeighbourState::Permanent && dst.is_some()
            };
            if let (true, Some(mac)) = (ours, mac) {
                found.push(Fdb { mac, dst, master });
            }
        }
        Ok(found)
    }

    fn fdb_message(index: u32, entry: &Fdb) -> NeighbourMessage {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Bridge;
        message.header.ifindex = index;
        // A bridge's permanent entry would mean "this is the bridge's own MAC": static it is.
        message.header.state = if entry.master { NeighbourState::Noarp } else { NeighbourState::Permanent };
        message.header.flags = if entry.master { NeighbourFlags::Controller } else { NeighbourFlags::Own };
        message.attributes.push(NeighbourAttribute::LinkLayerAddress(entry.mac.to_vec()));
        if let Some(dst) = entry.dst {
            message.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
        }
        message
    }

    pub async fn add_fdb(&self, index: u32, entry: &Fdb) -> Result<()> {
        let mut request = self.handle.neighbours().add_bridge(index, &entry.mac).replace();
        *request.message_mut() = Self::fdb_message(index, entry);
        request.execute().await.map_err(|e| PrismnetError::netlink(format!("adding forwarding entry {entry:?}"), e))
    }

    pub async fn del_fdb(&self, index: u32, entry: &Fdb) -> Result<()> {
        self.handle
            .neighbours()
            .del(Self::fdb_message(index, entry))
            .execute()
            .await
            .map_err(|e| PrismnetError::netlink(format!("removing forwarding entry {entry:?}"), e))
    }

    /// Permanent IPv4 neighbour entries of link `index`.
    pub async fn neighbours(&self, index: u32) -> Result<Vec<(Ipv4Addr, [u8; 6])>> {
        let messages: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute()
            .try_collect()
            .await
            .map_err(|e| PrismnetError::netlink("listing neighbours", e))?;
        let mut found = Vec::new();
        for message in messages.into_iter().filter(|m| m.header.ifindex == index && m.header.state == NeighbourState::Permanent) {
            let (mut ip, mut mac) = (None, None);
            for attribute in &message.attributes {
                match attribute {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
                    NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(l.as_slice()).ok(),
                    _ => {}
                }
            }
            if let (Some(ip), Some(mac)) = (ip, mac) {
                found.push((ip, mac));
            }
        }
        Ok(found)
    }

    pub async fn add_neighbour(&self, index: u32, ip: Ipv4Addr, mac: [u8; 6]) -> Result<()> {
        self.handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .link_layer_address(&mac)
            .replace()
            .execute()
            .await
            .map_err(|e| PrismnetError::netlink(format!("adding neighbour {ip}"), e))
    }

    pub async fn del_neighbour(&self, index: u32, ip: Ipv4Addr) -> Result<()> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.ifindex = index;
        message.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        self.handle.neighbours().del(message).execute().await.map_err(|e| PrismnetError::netlink(format!("removing neighbour {ip}"), e))
    }

    /// The IPv4 routes of the main table through link `index`: (destination, prefix length,
    /// gateway).
    pub async fn routes(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8, Option<Ipv4Addr>)>> {
        let request = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let messages: Vec<RouteMessage> =
            self.handle.route().get(request).execute().try_collect().await.map_err(|e| PrismnetError::netlink("listing routes", e))?;
        let mut found = Vec::new();
        for message in messages {
            if message.header.table != RouteHeader::RT_TABLE_MAIN || message.header.protocol == RouteProtocol::Kernel {
                continue;
            }
            let (mut oif, mut dst, mut gateway) = (None, Ipv4Addr::UNSPECIFIED, None);
            for attribute in &message.attributes {
                match attribute {
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = *a,
                    RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(*a),
                    _ => {}
                }
            }
            if oif == Some(index) {
                found.push((dst, message.header.destination_prefix_length, gateway));
            }
        }
        Ok(found)
    }

    /// A route to `dst/len` out of link `index`, through `gateway` (on-link: no subnet of the
    /// link needs to hold it) or straight to the link.
    pub async fn add_route(&self, index: u32, dst: Ipv4Addr, len: u8, gateway: Option<Ipv4Addr>) -> Result<()> {
        let mut route = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(dst, len).output_interface(index);
        route = match gateway {
            Some(gateway) => route.gateway(gateway).onlink(),
            None => route.scope(RouteScope::Link),
        };
        self.handle.route().add(route.build()).replace().execute().await.map_err(|e| PrismnetError::netlink(format!("adding a route to {dst}/{len}"), e))
    }

    pub async fn del_route(&self, index: u32, dst: Ipv4Addr, len: u8) -> Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(dst, len).output_interface(index).build();
        self.handle.route().del(route).execute().await.map_err(|e| PrismnetError::netlink(format!("removing the route to {dst}/{len}"), e))
    }

    /// The addresses link `index` answers ARP for on others' behalf (proxy entries).
    pub async fn proxies(&self, index: u32) -> Result<Vec<Ipv4Addr>> {
        let messages: Vec<NeighbourMessage> = self
            .handle
            .neighbours()
            .get()
            .proxies()
            .set_address_family(AddressFamily::Inet)
            .execute()
            .try_collect()
            .await
            .map_err(|e| PrismnetError::netlink("listing proxy entries", e))?;
        Ok(messages
            .iter()
            .filter(|m| m.header.ifindex == index)
            .flat_map(|m| &m.attributes)
            .filter_map(|a| match a {
                NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
                _ => None,
            })
            .collect())
    }

    pub async fn add_proxy(&self, index: u32, ip: Ipv4Addr) -> Result<()> {
        self.handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .flags(NeighbourFlags::Proxy)
            .replace()
            .execute()
            .await
            .map_err(|e| PrismnetError::netlink(format!("answering ARP for {ip}"), e))
    }

    pub async fn del_proxy(&self, index: u32, ip: Ipv4Addr) -> Result<()> {
        let mut message = NeighbourMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.ifindex = index;
        message.header.flags = NeighbourFlags::Proxy;
        message.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        self.handle.neighbours().del(message).execute().await.map_err(|e| PrismnetError::netlink(format!("no longer answering ARP for {ip}"), e))
    }

    /// The default route through `gateway`.
    pub async fn default_route(&self, gateway: Ipv4Addr) -> Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(Ipv4Addr::UNSPECIFIED, 0).gateway(gateway).build();
        self.handle.route().add(route).replace().execute().await.map_err(|e| PrismnetError::netlink(format!("adding the default route via {gateway}"), e))
    }
}
