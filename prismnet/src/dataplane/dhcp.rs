//! DHCP for the ports of a VPC on this node: one server per VPC namespace, on the bridge (the
//! gateway's side), answering each port from its plan — its fixed address, the subnet's mask,
//! gateway, DNS servers, static routes and the overlay's MTU. A request never leaves the node
//! (broadcasts are not sent over VXLAN), so each node answers its own ports, and a MAC that is
//! not a local port of a DHCP subnet gets no answer.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use ipnet::Ipv4Net;
use tokio_util::sync::CancellationToken;

use crate::dataplane::plan::{LocalPort, Plan, VpcPlan};
use crate::dataplane::{lock, netns};
use crate::error::{PrismnetError, Result};

/// How long a lease lasts: addresses are fixed, so only how often clients come back.
pub const LEASE_SECONDS: u32 = 86_400;

/// The current plan, shared with the servers.
pub type Current = Arc<Mutex<Arc<Plan>>>;

/// The running servers, by VNI.
#[derive(Default)]
pub struct Servers {
    running: Mutex<HashMap<u32, CancellationToken>>,
}

impl Servers {
    /// Starts the server of VPC `vni` in `ns` (its bridge `bridge`) unless it runs.
    pub fn ensure(&self, vni: u32, ns: &std::fs::File, bridge: &str, current: Current) -> Result<()> {
        let mut running = lock(&self.running);
        if running.get(&vni).is_some_and(|stop| !stop.is_cancelled()) {
            return Ok(());
        }
        let socket = open(ns, bridge).map_err(|e| PrismnetError::io(format!("the DHCP server of VNI {vni}"), e))?;
        let stop = CancellationToken::new();
        running.insert(vni, stop.clone());
        tracing::info!(vni, "DHCP server listening on the VPC's bridge");
        tokio::spawn(async move {
            if let Err(e) = serve(vni, socket, current, stop.clone()).await {
                tracing::warn!(vni, error = %e, "the DHCP server stopped; the next converge starts it again");
            }
            stop.cancel();
        });
        Ok(())
    }

    pub fn stop(&self, vni: u32) {
        if let Some(stop) = lock(&self.running).remove(&vni) {
            stop.cancel();
        }
    }
}

/// A UDP socket on port 67 of `bridge` inside `ns`, allowed to broadcast.
fn open(ns: &std::fs::File, bridge: &str) -> std::io::Result<tokio::net::UdpSocket> {
    let bridge = bridge.to_string();
    let socket = netns::within(ns, move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:67")?;
        socket.set_broadcast(true)?;
        // Bound to the bridge: replies to 255.255.255.255 leave there (the namespace has no
        // default route), and only the bridge's requests arrive.
        // SAFETY: setsockopt with a valid fd and a buffer of the given length.
        let bound = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                bridge.as_ptr().cast(),
                bridge.len() as libc::socklen_t,
            )
        };
        if bound != 0 {
            return Err(std::io::Error::last_os_error());
        }
        socket.set_nonblocking(true)?;
        Ok(socket)
    })?;
    tokio::net::UdpSocket::from_std(socket)
}

async fn serve(vni: u32, socket: tokio::net::UdpSocket, current: Current, stop: CancellationToken) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1500];
    let broadcast = SocketAddr::from((Ipv4Addr::BROADCAST, 68));
    loop {
        let (n, _) = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            received = socket.recv_from(&mut buf) => received?,
        };
        let request = match Message::decode(&mut Decoder::new(&buf[..n])) {
            Ok(request) => request,
            Err(e) => {
                tracing::debug!(vni, error = %e, "an unreadable DHCP message");
                continue;
            }
        };
        let plan = lock(&current).clone();
        let Some(vpc) = plan.vpcs.get(&vni) else { continue };
        if let Some(reply) = answer(vpc, &request) {
            let mut out = Vec::with_capacity(576);
            if let Err(e) = reply.encode(&mut Encoder::new(&mut out)) {
                tracing::warn!(vni, error = %e, "cannot encode a DHCP reply");
                continue;
            }
            socket.send_to(&out, broadcast).await?;
        }
    }
}

/// The port a request comes from: a local port of a DHCP subnet with the request's MAC.
fn port_of<'a>(vpc: &'a VpcPlan, request: &Message) -> Option<&'a LocalPort> {
    let mac = request.chaddr().get(..6)?;
    vpc.local.iter().find(|p| p.mac == mac && vpc.subnets.iter().any(|s| s.cidr == p.subnet && s.dhcp))
}

/// The reply to `request`, if it gets one (RFC 2131): an offer to a discover, an ack to a
/// request for the port's own address (a nak for any other), nothing else.
pub fn answer(vpc: &VpcPlan, request: &Message) -> Option<Message> {
    if request.opcode() != Opcode::BootRequest {
        return None;
    }
    let port = port_of(vpc, request)?;
    let kind = match request.opts().msg_type()? {
        MessageType::Discover => MessageType::Offer,
        MessageType::Request => {
            let asked = match request.opts().get(OptionCode::RequestedIpAddress) {
                Some(DhcpOption::RequestedIpAddress(ip)) => *ip,
                _ => request.ciaddr(),
            };
            if asked == port.ip || asked.is_unspecified() { MessageType::Ack } else { MessageType::Nak }
        }
        MessageType::Inform => MessageType::Ack,
        _ => return None,
    };
    let subnet = vpc.subnets.iter().find(|s| s.cidr == port.subnet)?;
    let mut reply = Message::default();
    reply
        .set_opcode(Opcode::BootReply)
        .set_xid(request.xid())
        .set_flags(request.flags())
        .set_giaddr(request.giaddr())
        .set_chaddr(request.chaddr());
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(subnet.gateway));
    if kind == MessageType::Nak {
        return Some(reply);
    }
    if request.opts().msg_type() != Some(MessageType::Inform) {
        reply.set_yiaddr(port.ip);
    }
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::AddressLeaseTime(LEASE_SECONDS));
    opts.insert(DhcpOption::SubnetMask(subnet.cidr.netmask()));
    opts.insert(DhcpOption::Router(vec![subnet.gateway]));
    opts.insert(DhcpOption::InterfaceMtu(u16::try_from(vpc.mtu).unwrap_or(u16::MAX)));
    if !subnet.dns_servers.is_empty() {
        opts.insert(DhcpOption::DomainNameServer(subnet.dns_servers.clone()));
    }
    // The machine's name is its port's; with names in FlashDNS, `<name>.<domain>` resolves.
    if let Some(name) = port.key.rsplit('/').next().filter(|n| !n.is_empty()) {
        opts.insert(DhcpOption::Hostname(name.to_string()));
    }
    if let Some(domain) = &subnet.domain {
        opts.insert(DhcpOption::DomainName(domain.clone()));
    }
    if !subnet.routes.is_empty() {
        // A client given classless routes ignores the router option (RFC 3442): the default
        // route goes in too.
        let mut routes = subnet.routes.clone();
        routes.push((Ipv4Net::default(), subnet.gateway));
        opts.insert(DhcpOption::ClasslessStaticRoute(routes));
    }
    Some(reply)
}

#[cfg(test)]
mod tests;
