//! A typed client of QEMU's machine protocol (QMP) over the VM's unix socket: the greeting,
//! capability negotiation, then one command at a time, events set aside while a reply is
//! awaited. Every call has a deadline: a QEMU that stops answering is an error, not a hang.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Interest};
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
        let text = request(command, arguments);
        self.writer.write_all(text.as_bytes()).await.map_err(|e| PlasmavmcError::qmp(command, e.to_string()))?;
        self.reply(command).await
    }

    /// Runs `command` with `fd` passed alongside (SCM_RIGHTS), as `getfd` and `add-fd` take
    /// descriptors: QEMU gets its own copy.
    pub async fn execute_with_fd(&mut self, command: &str, arguments: Option<Value>, fd: BorrowedFd<'_>) -> Result<Value> {
        let text = request(command, arguments);
        let socket: &UnixStream = self.writer.as_ref();
        let sent = socket
            .async_io(Interest::WRITABLE, || send_with_fd(socket.as_raw_fd(), text.as_bytes(), fd.as_raw_fd()))
            .await
            .map_err(|e| PlasmavmcError::qmp(command, e.to_string()))?;
        if sent != text.len() {
            // A short write of a one-line request on an empty socket does not happen; were it
            // to, the rest would go without the descriptor, which QEMU reads with the first byte.
            self.writer.write_all(&text.as_bytes()[sent..]).await.map_err(|e| PlasmavmcError::qmp(command, e.to_string()))?;
        }
        self.reply(command).await
    }

    async fn reply(&mut self, command: &str) -> Result<Value> {
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

    /// Whether the guest has the device `id` (one `device_del` asked for is there until the
    /// guest lets go of it).
    pub async fn has_device(&mut self, id: &str) -> Result<bool> {
        let devices = self.execute("qom-list", Some(json!({"path": "/machine/peripheral"}))).await?;
        Ok(devices.as_array().into_iter().flatten().any(|d| d["name"] == id))
    }

    pub async fn status(&mut self) -> Result<RunStatus> {
        let value = self.execute("query-status", None).await?;
        serde_json::from_value(value).map_err(|e| PlasmavmcError::qmp("query-status", e.to_string()))
    }
}

fn request(command: &str, arguments: Option<Value>) -> String {
    let mut request = json!({ "execute": command });
    if let Some(arguments) = arguments {
        request["arguments"] = arguments;
    }
    let mut text = request.to_string();
    text.push('\n');
    text
}

/// One `sendmsg` of `bytes` with `fd` as SCM_RIGHTS ancillary data.
fn send_with_fd(socket: RawFd, bytes: &[u8], fd: RawFd) -> std::io::Result<usize> {
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    // Room for one descriptor's control message, aligned as cmsghdr wants.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // SAFETY: an all-zero msghdr is valid; its pointers are set below to live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: `control` holds `space` bytes (32 >= CMSG_SPACE(4) = 24), so the first header
    // and its data fit; the descriptor is copied in, not referenced.
    unsafe {
        let header = libc::CMSG_FIRSTHDR(&msg);
        (*header).cmsg_level = libc::SOL_SOCKET;
        (*header).cmsg_type = libc::SCM_RIGHTS;
        (*header).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::copy_nonoverlapping(&fd as *const RawFd as *const u8, libc::CMSG_DATA(header), std::mem::size_of::<RawFd>());
    }
    // SAFETY: `msg` points at `iov` and `control`, both alive for the call.
    let sent = unsafe { libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sent as usize)
}
