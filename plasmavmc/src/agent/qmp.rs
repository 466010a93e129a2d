//! A typed client of QEMU's machine protocol (QMP) over the VM's unix socket: the greeting,
//! capability negotiation, then one command at a time, events set aside while a reply is
//! awaited. Every call has a deadline: a QEMU that stops answering is an error, not a hang.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

use crate::error::{PlasmavmcError, Result};

/// How long one QMP call may take.
const DEADLINE: Duration = Duration::from_secs(10);

pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Events received while waiting for replies, oldest first.
    pub events: Vec<Value>,
}

/// `query-status`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct RunStatus {
    pub running: bool,
    /// `running`, `paused`, `shutdown`, `inmigrate`, `postmigrate`, ...
    pub status: String,
}

impl Qmp {
    /// Connects and negotiates capabilities.
    pub async fn connect(socket: &Path) -> Result<Self> {
        let what = format!("QMP at {}", socket.display());
        let stream = tokio::time::timeout(DEADLINE, UnixStream::connect(socket))
            .await
            .map_err(|_| PlasmavmcError::qmp(&what, "connect timed out"))?
            .map_err(|e| PlasmavmcError::qmp(&what, e.to_string()))?;
        let (read, writer) = stream.into_split();
        let mut qmp = Self { reader: BufReader::new(read), writer, events: Vec::new() };
        let greeting = qmp.next().await?;
        if greeting.get("QMP").is_none() {
            return Err(PlasmavmcError::qmp(&what, format!("expected a greeting, got {greeting}")));
        }
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    async fn next(&mut self) -> Result<Value> {
        let mut line = String::new();
        let read = tokio::time::timeout(DEADLINE, self.reader.read_line(&mut line))
            .await
            .map_err(|_| PlasmavmcError::qmp("QMP", "no answer within 10 s"))?
            .map_err(|e| PlasmavmcError::qmp("QMP", e.to_string()))?;
        if read == 0 {
            return Err(PlasmavmcError::qmp("QMP", "QEMU closed the socket"));
        }
        serde_json::from_str(&line).map_err(|e| PlasmavmcError::qmp("QMP", format!("not JSON ({e}): {line}")))
    }

    /// Runs `command` and returns its `return` value (QEMU's `error` as an error).
    pub async fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut text = request.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes()).await.map_err(|e| PlasmavmcError::qmp(command, e.to_string()))?;
        loop {
            let message = self.next().await?;
            if message.get("event").is_some() {
                self.events.push(message);
                continue;
            }
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let desc = error.get("desc").and_then(Value::as_str).unwrap_or("unknown error");
                return Err(PlasmavmcError::qmp(command, desc.to_string()));
            }
        }
    }

    pub async fn status(&mut self) -> Result<RunStatus> {
        let value = self.execute("query-status", None).await?;
        serde_json::from_value(value).map_err(|e| PlasmavmcError::qmp("query-status", e.to_string()))
    }
}
