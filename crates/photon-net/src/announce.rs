//! Telling the segment that an address moved to this node, so clients and switches stop
//! sending to the node that held it before: a gratuitous ARP for IPv4 (RFC 5227 §3, "ARP
//! Announcement") and an unsolicited neighbour advertisement for IPv6 (RFC 4861 §7.2.6, with
//! the Override flag, so neighbours replace the link-layer address they have cached). Both are
//! whole Ethernet frames sent on a raw `AF_PACKET` socket: they do not depend on the address
//! having finished duplicate address detection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
const ICMPV6: u8 = 58;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// The all-nodes multicast address, every host on the link listens on it.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Announces `address` at `interface`'s own MAC from `interface`, `count` times.
pub fn announce(interface: &str, address: IpAddr, count: usize) -> Result<(), String> {
    let mac = mac_of(interface)?;
    let name = std::ffi::CString::new(interface).map_err(|_| format!("{interface:?} is not an interface name"))?;
    // SAFETY: if_nametoindex reads a NUL-terminated string we own.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(format!("no interface {interface}"));
    }
    announce_on(index, mac, address, count)
}

/// Announces `address` at `mac` from the link with `index` in the calling thread's network
/// namespace, `count` times (an address on another host, announced on its behalf).
pub fn announce_on(index: u32, mac: [u8; 6], address: IpAddr, count: usize) -> Result<(), String> {
    let (ethertype, frame) = match address {
        IpAddr::V4(v4) => (ETH_ARP, arp_announcement(mac, v4)),
        IpAddr::V6(v6) => (ETH_IPV6, neighbor_advertisement(mac, v6)),
    };
    send(index, ethertype, &frame, count)
}

/// Sends `frame` (a whole Ethernet frame, destination first) `count` times on link `index`.
fn send(index: u32, ethertype: u16, frame: &[u8], count: usize) -> Result<(), String> {
    // SAFETY: a socket(2) call; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(ethertype.to_be())) };
    if fd < 0 {
        return Err(format!("raw socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: all zeros is a valid sockaddr_ll; the fields are set below.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ethertype.to_be();
    to.sll_ifindex = index as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&frame[..6]);
    let mut result = Ok(());
    for _ in 0..count {
        // SAFETY: `frame` and `to` outlive the call; the lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            result = Err(format!("sending the announcement: {}", std::io::Error::last_os_error()));
            break;
        }
    }
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    result
}

fn mac_of(interface: &str) -> Result<[u8; 6], String> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address"))
        .map_err(|e| format!("the MAC of {interface}: {e}"))?;
    let bytes: Vec<u8> = text.trim().split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect();
    bytes.try_into().map_err(|_| format!("{interface} has no Ethernet address ({})", text.trim()))
}

fn ethernet(destination: [u8; 6], mac: [u8; 6], ethertype: u16, capacity: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + capacity);
    f.extend_from_slice(&destination);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// A broadcast ARP request whose sender and target address are both `address`.
fn arp_announcement(mac: [u8; 6], address: Ipv4Addr) -> Vec<u8> {
    let mut f = ethernet([0xff; 6], mac, ETH_ARP, 28);
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]); // Ethernet, IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&address.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&address.octets());
    f
}

/// A neighbour advertisement of `address` at `mac` to all nodes: Override set, Solicited not
/// (RFC 4861 §7.2.6), the target link-layer address option, hop limit 255 (receivers drop
/// any other, §7.1.2), sent from `address` itself.
fn neighbor_advertisement(mac: [u8; 6], address: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[NEIGHBOR_ADVERTISEMENT, 0, 0, 0]); // type, code, checksum (below)
    icmp.extend_from_slice(&[0x20, 0, 0, 0]); // flags: Override
    icmp.extend_from_slice(&address.octets());
    icmp.extend_from_slice(&[2, 1]); // option: target link-layer address, 8 bytes
    icmp.extend_from_slice(&mac);
    let checksum = icmpv6_checksum(address, ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    let o = ALL_NODES.octets();
    let mut f = ethernet([0x33, 0x33, o[12], o[13], o[14], o[15]], mac, ETH_IPV6, 40 + icmp.len());
    f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class, no flow label
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[ICMPV6, 255]);
    f.extend_from_slice(&address.octets());
    f.extend_from_slice(&o);
    f.extend_from_slice(&icmp);
    f
}

/// The Internet checksum over the IPv6 pseudo-header and `message` (RFC 4443 §2.3).
fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    };
    add(&source.octets());
    add(&destination.octets());
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arp_announcement_names_the_address_as_sender_and_target() {
        let f = arp_announcement([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "a request");
        assert_eq!(&f[28..32], &[10, 0, 0, 9]);
        assert_eq!(&f[38..42], &[10, 0, 0, 9]);
    }

    #[test]
    fn a_neighbor_advertisement_overrides_to_all_nodes_with_a_valid_checksum() {
        let mac = [2, 0, 0, 0, 0, 7];
        let vip: Ipv6Addr = "fd00::200".parse().expect("an address");
        let f = neighbor_advertisement(mac, vip);
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(&f[..6], &[0x33, 0x33, 0, 0, 0, 1], "to the all-nodes group's MAC");
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[14 + 7], 255, "hop limit 255, or receivers drop it");
        assert_eq!(&f[14 + 8..14 + 24], &vip.octets(), "from the VIP");
        let icmp = &f[54..];
        assert_eq!(icmp[0], 136);
        assert_eq!(icmp[4], 0x20, "Override, not Solicited, not Router");
        assert_eq!(&icmp[8..24], &vip.octets(), "the target is the VIP");
        assert_eq!(&icmp[24..32], &[2, 1, 2, 0, 0, 0, 0, 7], "at this MAC");
        // Summing a message with its checksum in place gives zero (its complement, 0xffff).
        assert_eq!(icmpv6_checksum(vip, ALL_NODES, icmp), 0);
    }
}
