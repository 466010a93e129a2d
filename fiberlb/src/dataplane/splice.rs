//! L4 bytes moved from one socket to another through a pipe with `splice(2)`: the kernel hands
//! the pages on without copying them into the process and back, which is most of what an L4
//! proxy would otherwise spend its time on. Readiness comes from tokio's reactor (`try_io`
//! clears it when the kernel says EAGAIN).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes asked of one `splice` (the pipe is sized to hold them).
const CHUNK: usize = 256 * 1024;

/// A pipe for one direction of one connection.
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe not yet passed on.
    held: usize,
}

impl Pipe {
    pub fn new() -> io::Result<Self> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two descriptors for pipe2 to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // A bigger pipe moves more per call; the default (64 KiB) still works if refused.
        // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
        Ok(Self { read, write, held: 0 })
    }

    /// Moves what `from` has (up to a chunk) into the pipe: `Ok(0)` at its end, `WouldBlock`
    /// when it has nothing now.
    pub fn fill(&mut self, from: &TcpStream) -> io::Result<usize> {
        let to = self.write.as_raw_fd();
        let n = from.try_io(Interest::READABLE, || splice(from.as_raw_fd(), to, CHUNK))?;
        self.held += n;
        Ok(n)
    }

    /// Passes what the pipe holds to `to`, as much as it takes now.
    pub fn drain(&mut self, to: &TcpStream) -> io::Result<usize> {
        let from = self.read.as_raw_fd();
        let held = self.held;
        let n = to.try_io(Interest::WRITABLE, || splice(from, to.as_raw_fd(), held))?;
        self.held -= n;
        Ok(n)
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    // SAFETY: both descriptors are open for the call (borrowed from live owners); null offsets
    // are what sockets and pipes require.
    let n = unsafe {
        libc::splice(from, std::ptr::null_mut(), to, std::ptr::null_mut(), len, libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK)
    };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_pass_from_one_socket_to_another_unchanged() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut sender = TcpStream::connect(addr).await.expect("connect");
        let (from, _) = listener.accept().await.expect("accept");
        let to = TcpStream::connect(addr).await.expect("connect");
        let (mut receiver, _) = listener.accept().await.expect("accept");
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let send = tokio::spawn(async move {
            sender.write_all(&payload).await.expect("send");
            sender.shutdown().await.expect("shutdown");
        });
        let receive = tokio::spawn(async move {
            let mut got = Vec::new();
            receiver.read_to_end(&mut got).await.expect("receive");
            got
        });
        let mut pipe = Pipe::new().expect("a pipe");
        loop {
            from.readable().await.expect("readable");
            match pipe.fill(&from) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("fill: {e}"),
            }
            while !pipe.is_empty() {
                to.writable().await.expect("writable");
                match pipe.drain(&to) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("drain: {e}"),
                }
            }
        }
        drop(to);
        send.await.expect("sent");
        assert_eq!(receive.await.expect("received"), expected);
    }
}
