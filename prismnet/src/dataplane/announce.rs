//! Gratuitous ARP: when this node learns of a port on another node, it announces the port's
//! address and MAC on the VPC's bridge, so a local machine that already asked for that address
//! (and got no answer, the entry not yet programmed) learns it now instead of after the
//! kernel's one-second retry.

use std::io;
use std::net::Ipv4Addr;

use crate::dataplane::netns;

/// An ARP reply from (`mac`, `ip`) to everyone, as a frame.
fn frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut frame = [0u8; 42];
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&mac);
    frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    // Ethernet, IPv4, 6-byte and 4-byte addresses, a reply.
    frame[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    frame[22..28].copy_from_slice(&mac);
    frame[28..32].copy_from_slice(&ip.octets());
    frame[32..38].copy_from_slice(&[0xff; 6]);
    frame[38..42].copy_from_slice(&ip.octets());
    frame
}

/// Sends one gratuitous ARP reply for each of `entries` out of link `index` of `ns`.
pub fn announce(ns: &std::fs::File, index: u32, entries: &[(Ipv4Addr, [u8; 6])]) -> io::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    netns::within(ns, || {
        // SAFETY: a packet socket; the fd is closed below on every path.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(0x0806u16.to_be())) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut result = Ok(());
        for (ip, mac) in entries {
            // SAFETY: a zeroed sockaddr_ll filled in below.
            let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            to.sll_family = libc::AF_PACKET as u16;
            to.sll_protocol = 0x0806u16.to_be();
            to.sll_ifindex = index as i32;
            to.sll_halen = 6;
            to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
            let bytes = frame(*mac, *ip);
            // SAFETY: sendto with a buffer and address of the lengths given.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    bytes.as_ptr().cast(),
                    bytes.len(),
                    0,
                    (&to as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if sent < 0 {
                result = Err(io::Error::last_os_error());
                break;
            }
        }
        // SAFETY: closing the socket opened above.
        unsafe { libc::close(fd) };
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_an_arp_reply_from_the_port_to_everyone() {
        let bytes = frame([2, 0x7e, 10, 0, 1, 10], "10.0.1.10".parse().unwrap());
        assert_eq!(&bytes[..6], &[0xff; 6]);
        assert_eq!(&bytes[12..14], &[8, 6]);
        assert_eq!(&bytes[20..22], &[0, 2], "a reply");
        assert_eq!(&bytes[28..32], &[10, 0, 1, 10]);
        assert_eq!(&bytes[38..42], &[10, 0, 1, 10], "gratuitous: sender and target address alike");
    }
}
