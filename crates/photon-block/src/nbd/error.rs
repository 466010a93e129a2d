//! Why an NBD session ended early: I/O, a client breaking the protocol, or a deadline. These
//! never reach the client as replies; the session logs them and closes.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The client broke a rule that leaves the stream undecodable or the session pointless
    /// (bad magic, a truncated frame, an oversized option or write, an unknown export chosen
    /// with `NBD_OPT_EXPORT_NAME`). Said at debug/warn level, never answered.
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("negotiation did not finish within {0:?}")]
    HandshakeTimeout(Duration),
}

impl SessionError {
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::Protocol(message.into())
    }
}
