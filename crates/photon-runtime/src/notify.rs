//! systemd's notify protocol (`sd_notify`): READY=1 once serving, STOPPING=1 on shutdown,
//! WATCHDOG=1 pings while `WATCHDOG_USEC` asks for them. Without `NOTIFY_SOCKET` it is a no-op.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
    pub fn from_env() -> Self {
        let target = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            let addr = match path.strip_prefix('@') {
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
                None => SocketAddr::from_pathname(&path),
            };
            match (UnixDatagram::unbound(), addr) {
                (Ok(socket), Ok(addr)) => Some((socket, addr)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(%path, error = %e, "NOTIFY_SOCKET is set but unusable; systemd will not hear from us");
                    None
                }
            }
        });
        Self { target }
    }

    /// Sends one notify message, e.g. `READY=1\nSTATUS=serving`.
    pub fn send(&self, message: &str) {
        if let Some((socket, addr)) = &self.target {
            if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
                tracing::warn!(error = %e, message, "sd_notify failed");
            }
        }
    }

    /// How often to ping the watchdog: half of `WATCHDOG_USEC`, if it is meant for us.
    pub fn watchdog_interval() -> Option<Duration> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        if let Ok(pid) = std::env::var("WATCHDOG_PID") {
            if pid.parse::<u32>().ok()? != std::process::id() {
                return None;
            }
        }
        (usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}
