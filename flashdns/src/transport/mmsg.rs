//! Many datagrams per system call (Linux `recvmmsg` and `sendmmsg`): under load a UDP worker
//! takes every query waiting on its socket at once, up to `BATCH`, and sends all their
//! responses at once, as Knot does. Each call costs about as much as the whole answer from the
//! cache, so one call per batch instead of two per query is most of what is left to save.
//!
//! The only unsafe code in flashdns: the kernel writes into buffers this module owns, through
//! pointers made just before each call and not kept after it.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::os::fd::AsRawFd;

use crate::dns::respond::MAX_QUERY_BYTES;

/// Datagrams per call at most.
pub const BATCH: usize = 32;
/// One byte more than a query may have, so a longer datagram shows (as `MSG_TRUNC`).
const DATAGRAM: usize = MAX_QUERY_BYTES + 1;

/// Buffers for one worker: the queries received, where each came from, and the responses.
pub struct Batch {
    queries: Vec<u8>,
    lens: [usize; BATCH],
    peers: [libc::sockaddr_storage; BATCH],
    peer_lens: [libc::socklen_t; BATCH],
    received: usize,
    /// The response to query `i`, or empty for none.
    pub responses: Vec<Vec<u8>>,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            queries: vec![0; BATCH * DATAGRAM],
            lens: [0; BATCH],
            // SAFETY: all zeros is a valid (empty) sockaddr_storage.
            peers: unsafe { zeroed() },
            peer_lens: [0; BATCH],
            received: 0,
            responses: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
        }
    }
}

impl Batch {
    /// Waits for at least one datagram, then takes all waiting, up to `BATCH`; returns how
    /// many. A datagram longer than any query is received as empty (answered by silence).
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut iovecs: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.queries[i * DATAGRAM..].as_mut_ptr().cast(),
            iov_len: DATAGRAM,
        });
        // SAFETY: all zeros is a valid mmsghdr (no buffers); the fields are set below.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, header) in headers.iter_mut().enumerate() {
            header.msg_hdr.msg_name = (&mut self.peers[i] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = &mut iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every pointer in `headers` points into `self` or `iovecs`, which outlive the
        // call, with the lengths given; the kernel writes at most that much.
        let n = unsafe {
            libc::recvmmsg(socket.as_raw_fd(), headers.as_mut_ptr(), BATCH as u32, libc::MSG_WAITFORONE, std::ptr::null_mut())
        };
        if n < 0 {
            self.received = 0;
            return Err(io::Error::last_os_error());
        }
        self.received = n as usize;
        for (i, header) in headers.iter().take(self.received).enumerate() {
            let truncated = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            self.lens[i] = if truncated { 0 } else { (header.msg_len as usize).min(DATAGRAM) };
            self.peer_lens[i] = header.msg_hdr.msg_namelen;
            self.responses[i].clear();
        }
        Ok(self.received)
    }

    /// Query `i` of those received, the address it came from, and the buffer for its response.
    pub fn query_and_response(&mut self, i: usize) -> (&[u8], Option<IpAddr>, &mut Vec<u8>) {
        let peer = ip_of(&self.peers[i]);
        (&self.queries[i * DATAGRAM..i * DATAGRAM + self.lens[i]], peer, &mut self.responses[i])
    }

    /// Sends every non-empty response to where its query came from. A response the kernel
    /// refuses (the peer unreachable, say) is skipped; the others still go.
    pub fn send(&mut self, socket: &UdpSocket) {
        let mut iovecs: [libc::iovec; BATCH] =
            std::array::from_fn(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 });
        // SAFETY: as in `receive`.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        let mut count = 0;
        for i in 0..self.received {
            if self.responses[i].is_empty() {
                continue;
            }
            iovecs[count] = libc::iovec { iov_base: self.responses[i].as_mut_ptr().cast(), iov_len: self.responses[i].len() };
            headers[count].msg_hdr.msg_name = (&mut self.peers[i] as *mut libc::sockaddr_storage).cast();
            headers[count].msg_hdr.msg_namelen = self.peer_lens[i];
            count += 1;
        }
        for (header, iovec) in headers.iter_mut().zip(iovecs.iter_mut()).take(count) {
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: the headers point into `self` and `iovecs`, alive for the call; the kernel
            // only reads them.
            let n = unsafe {
                libc::sendmmsg(socket.as_raw_fd(), headers[sent..].as_mut_ptr(), (count - sent) as u32, 0)
            };
            if n > 0 {
                sent += n as usize;
            } else {
                // The first of the rest failed: skip it and go on with the others.
                tracing::debug!(error = %io::Error::last_os_error(), "UDP send failed");
                sent += 1;
            }
        }
    }
}

/// The address in `storage`, if IPv4 or IPv6.
fn ip_of(storage: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // enough for.
            let v4 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}
