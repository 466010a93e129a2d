//! Gratuitous ARP (RFC 5227 §3, "ARP Announcement"): after taking over an IPv4 address, tell
//! the segment that it now lives at this interface's MAC, so clients and switches stop sending
//! to the node that held it before. A raw `AF_PACKET` socket sends the frame.

use std::net::Ipv4Addr;

/// Broadcasts an ARP announcement of `address` from `interface`, `count` times.
pub fn announce(interface: &str, address: Ipv4Addr, count: usize) -> Result<(), String> {
    let mac = mac_of(interface)?;
    let name = std::ffi::CString::new(interface).map_err(|_| format!("{interface:?} is not an interface name"))?;
    // SAFETY: if_nametoindex reads a NUL-terminated string we own.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(format!("no interface {interface}"));
    }
    let frame = frame(mac, address);
    // SAFETY: a socket(2) call; the descriptor is closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from((libc::ETH_P_ARP as u16).to_be())) };
    if fd < 0 {
        return Err(format!("raw socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: all zeros is a valid sockaddr_ll; the fields are set below.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
    to.sll_ifindex = index as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
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
            result = Err(format!("sending ARP: {}", std::io::Error::last_os_error()));
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

/// An Ethernet frame with an ARP request whose sender and target address are both `address`.
fn frame(mac: [u8; 6], address: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]); // Ethernet, IPv4, request
    f.extend_from_slice(&mac);
    f.extend_from_slice(&address.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&address.octets());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_names_the_address_as_sender_and_target() {
        let f = frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 9));
        assert_eq!(f.len(), 42);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "a request");
        assert_eq!(&f[28..32], &[10, 0, 0, 9]);
        assert_eq!(&f[38..42], &[10, 0, 0, 9]);
    }
}
