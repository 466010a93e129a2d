//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) a pool may ask to be sent to
//! its backends first, so they see the client's address instead of fiberlb's.

use std::net::SocketAddr;

use crate::model::pool::ProxyProtocol;

/// The v2 signature.
const SIGNATURE: [u8; 12] = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/// The header for a TCP connection from `client` to `local` (empty for `None`).
pub fn header(version: ProxyProtocol, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    // Mixed families cannot be told in one header: map both to IPv6.
    let (client, local) = match (client, local) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) | (SocketAddr::V6(_), SocketAddr::V6(_)) => (client, local),
        _ => (v6(client), v6(local)),
    };
    match version {
        ProxyProtocol::None => Vec::new(),
        ProxyProtocol::V1 => {
            let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
            format!("PROXY {family} {} {} {} {}\r\n", client.ip(), local.ip(), client.port(), local.port()).into_bytes()
        }
        ProxyProtocol::V2 => {
            let mut out = SIGNATURE.to_vec();
            out.push(0x21); // version 2, PROXY command
            match (client, local) {
                (SocketAddr::V4(c), SocketAddr::V4(l)) => {
                    out.push(0x11); // TCP over IPv4
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&c.ip().octets());
                    out.extend_from_slice(&l.ip().octets());
                }
                _ => {
                    out.push(0x21); // TCP over IPv6
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&v6_octets(client));
                    out.extend_from_slice(&v6_octets(local));
                }
            }
            out.extend_from_slice(&client.port().to_be_bytes());
            out.extend_from_slice(&local.port().to_be_bytes());
            out
        }
    }
}

fn v6(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    }
}

fn v6_octets(addr: SocketAddr) -> [u8; 16] {
    match addr {
        SocketAddr::V4(v4) => v4.ip().to_ipv6_mapped().octets(),
        SocketAddr::V6(v6) => v6.ip().octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_one_is_a_text_line_and_two_a_binary_block() {
        let (c, l) = ("192.0.2.7:40000".parse().unwrap(), "10.0.0.1:443".parse().unwrap());
        assert_eq!(header(ProxyProtocol::V1, c, l), b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 443\r\n");
        let v2 = header(ProxyProtocol::V2, c, l);
        assert_eq!(&v2[..12], &SIGNATURE);
        assert_eq!(&v2[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&v2[16..20], &[192, 0, 2, 7]);
        assert_eq!(&v2[24..28], &[0x9c, 0x40, 0x01, 0xbb]);
        assert!(header(ProxyProtocol::None, c, l).is_empty());
    }
}
