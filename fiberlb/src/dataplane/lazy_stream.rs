//! A client connection that joins the reactor only when it would block. Most short
//! connections (a request that arrived with the connection, an answer the socket takes whole,
//! then close) never do: reading and writing straight on the socket saves the two `epoll_ctl`
//! calls tokio makes for every registered socket (add on the way in, delete on the way out)
//! and a trip through the event loop before the first read — HAProxy's "speculative I/O".
//! The first read or write that would block registers the socket, and from then on it is an
//! ordinary `tokio::net::TcpStream`.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub struct LazyStream {
    state: State,
}

enum State {
    /// Not in the reactor yet (non-blocking).
    Raw(std::net::TcpStream),
    Registered(TcpStream),
    /// Registration failed; the socket is closed.
    Gone,
}

impl LazyStream {
    /// `socket` must be non-blocking (accepted with `SOCK_NONBLOCK`).
    pub fn new(socket: std::net::TcpStream) -> Self {
        Self { state: State::Raw(socket) }
    }

    /// The socket in the reactor, registering it now if it is not yet.
    fn registered(&mut self) -> io::Result<&mut TcpStream> {
        self.state = match std::mem::replace(&mut self.state, State::Gone) {
            State::Raw(socket) => State::Registered(TcpStream::from_std(socket)?),
            other => other,
        };
        match &mut self.state {
            State::Registered(stream) => Ok(stream),
            _ => Err(io::Error::new(io::ErrorKind::NotConnected, "the connection could not join the event loop")),
        }
    }

    /// Runs `attempt` on the raw socket while it is not registered: `Some` with its result
    /// unless it would block (then the caller registers and polls through the reactor).
    fn try_raw<T>(&mut self, attempt: impl FnOnce(&std::net::TcpStream) -> io::Result<T>) -> Option<io::Result<T>> {
        let State::Raw(socket) = &self.state else { return None };
        match attempt(socket) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            done => Some(done),
        }
    }
}

/// `recv` into the unfilled part of `buf` without zeroing it first.
fn recv_into(socket: &std::net::TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<()> {
    // SAFETY: the kernel writes at most `unfilled.len()` bytes into memory we own; exactly the
    // `n` it reports are then marked initialized and filled.
    unsafe {
        let unfilled = buf.unfilled_mut();
        let n = libc::recv(socket.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len(), 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.assume_init(n as usize);
        buf.advance(n as usize);
    }
    Ok(())
}

impl AsyncRead for LazyStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(done) = this.try_raw(|socket| recv_into(socket, buf)) {
            return Poll::Ready(done);
        }
        Pin::new(this.registered()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for LazyStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(done) = this.try_raw(|mut socket| socket.write(buf)) {
            return Poll::Ready(done);
        }
        Pin::new(this.registered()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(done) = this.try_raw(|mut socket| socket.write_vectored(bufs)) {
            return Poll::Ready(done);
        }
        Pin::new(this.registered()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Registered(stream) => Pin::new(stream).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Raw(socket) => Poll::Ready(socket.shutdown(std::net::Shutdown::Write)),
            State::Registered(stream) => Pin::new(stream).poll_shutdown(cx),
            State::Gone => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair: the accepted side non-blocking and unregistered, the other a client.
    async fn pair() -> (LazyStream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        accepted.set_nonblocking(true).expect("non-blocking");
        (LazyStream::new(accepted), client)
    }

    #[tokio::test]
    async fn bytes_already_there_are_read_without_joining_the_reactor() {
        let (mut lazy, mut client) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut buf = [0u8; 64];
        let n = lazy.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
        lazy.write_all(b"answer").await.expect("write");
        assert!(matches!(lazy.state, State::Raw(_)), "never had to wait, so never registered");
        lazy.shutdown().await.expect("shutdown");
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.expect("read the answer");
        assert_eq!(answer, b"answer");
    }

    #[tokio::test]
    async fn a_read_that_would_block_registers_and_wakes_when_bytes_come() {
        let (mut lazy, mut client) = pair().await;
        let writer = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            client.write_all(b"late").await.expect("write");
            client
        });
        let mut buf = [0u8; 16];
        let n = lazy.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"late");
        assert!(matches!(lazy.state, State::Registered(_)));
        drop(writer.await.expect("writer"));
        assert_eq!(lazy.read(&mut buf).await.expect("read at the end"), 0, "the close is seen through the reactor");
    }
}
