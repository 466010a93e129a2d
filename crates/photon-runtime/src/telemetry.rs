//! Logging: human-readable on a terminal, JSON under systemd (where journald keeps the fields).

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSection};
use crate::RuntimeError;

/// Installs the global subscriber. Safe to call twice (the second call changes nothing).
pub fn init(log: &LogSection) -> Result<(), RuntimeError> {
    let filter = EnvFilter::try_new(&log.level)
        .map_err(|e| RuntimeError::Config(format!("bad value for key `log.level` ({:?}): {e}", log.level)))?;
    let json = match log.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.try_init() };
    Ok(())
}

/// Standard error that drops what it cannot write. When the log sink goes away (a supervisor
/// died, a pipe closed), tracing-subscriber would report the failure with `eprintln!`, which
/// panics on a broken stderr: losing logs must never take the service down with them.
struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}
