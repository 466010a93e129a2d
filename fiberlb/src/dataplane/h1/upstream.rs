//! Connections to backends, kept open between requests: a client connection keeps the few it
//! used (so a keep-alive client usually finds its backend connection at hand), and gives them
//! to its thread's idle pool when it closes, where the thread's other client connections take
//! them. Per thread, because a dataplane thread's connections all run on its own reactor: no
//! lock, and no socket woken on another thread's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Idle connections kept per backend address on a thread.
const MAX_IDLE_PER_BACKEND: usize = 512;
/// An idle connection older than this is closed rather than reused (backends' keep-alive
/// timeouts are usually longer: nginx's is 75 s).
const MAX_IDLE_FOR: Duration = Duration::from_secs(50);
/// A connection idle longer than this is checked for a close from the backend before reuse.
const CHECK_AFTER: Duration = Duration::from_millis(500);
/// Backend connections one client connection keeps.
const KEPT_PER_CLIENT: usize = 4;

/// An open connection to a backend, with the bytes read from it and not yet used.
pub struct Upstream {
    pub addr: SocketAddr,
    pub stream: TcpStream,
    pub buf: BytesMut,
    idle_since: Instant,
}

impl Upstream {
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> std::io::Result<Upstream> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(connected) => connected?,
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no connection within {timeout:?}"))),
        };
        stream.set_nodelay(true)?;
        Ok(Upstream { addr, stream, buf: BytesMut::with_capacity(16 * 1024), idle_since: Instant::now() })
    }

    /// Whether a connection that sat idle may still be used: not past its age, and (after a
    /// while) not closed by the backend meanwhile.
    fn usable(&self) -> bool {
        let idle = self.idle_since.elapsed();
        if idle > MAX_IDLE_FOR {
            return false;
        }
        if idle < CHECK_AFTER {
            return true;
        }
        let mut byte = [0u8; 1];
        matches!(self.stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

thread_local! {
    /// The thread's idle backend connections by address.
    static IDLE: RefCell<HashMap<SocketAddr, Vec<Upstream>>> = RefCell::default();
}

fn take_idle(addr: SocketAddr) -> Option<Upstream> {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.get_mut(&addr)?;
        while let Some(up) = list.pop() {
            if up.usable() {
                return Some(up);
            }
        }
        None
    })
}

fn give_idle(up: Upstream) {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.entry(up.addr).or_default();
        if list.len() >= MAX_IDLE_PER_BACKEND {
            list.remove(0);
        }
        list.push(up);
    });
}

/// The backend connections one client connection keeps; given to the thread's pool when
/// dropped.
#[derive(Default)]
pub struct Kept {
    conns: Vec<Upstream>,
}

impl Kept {

    /// An idle connection to `addr`, kept here or from the pool.
    pub fn take(&mut self, addr: SocketAddr) -> Option<Upstream> {
        while let Some(i) = self.conns.iter().position(|c| c.addr == addr) {
            let up = self.conns.swap_remove(i);
            if up.usable() {
                return Some(up);
            }
        }
        take_idle(addr)
    }

    /// Keeps `up` (its exchange done, nothing unread) for the next request.
    pub fn put(&mut self, mut up: Upstream) {
        up.idle_since = Instant::now();
        if self.conns.len() >= KEPT_PER_CLIENT {
            let oldest = self.conns.remove(0);
            give_idle(oldest);
        }
        self.conns.push(up);
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        for up in self.conns.drain(..) {
            give_idle(up);
        }
    }
}
