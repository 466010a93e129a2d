//! Attaching to a console on the node that runs the VM: the console log followed from
//! `backlog` bytes before its end (QEMU writes everything the guest prints there, whoever is
//! attached), and input written into QEMU's console socket (whose own output is drained and
//! dropped: the log already carries it, and an undrained socket would stall the guest's
//! serial port). Ends when the caller hangs up or QEMU exits.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use photon_api::plasmavmc::v1::ConsoleOutput;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tonic::Status;

use super::{Input, Output};
use crate::agent::qemu;

/// How often a quiet console log is looked at again.
const POLL: Duration = Duration::from_millis(50);

pub async fn attach(dir: PathBuf, backlog: u32, typed: Vec<u8>, mut input: Input) -> Result<Output, Status> {
    if qemu::running(&dir).is_none() {
        return Err(Status::failed_precondition("the VM is not running (start it first)"));
    }
    let log = dir.join(qemu::CONSOLE_LOG);
    let mut file = tokio::fs::File::open(&log).await.map_err(|e| Status::unavailable(format!("{}: {e}", log.display())))?;
    let end = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    file.seek(SeekFrom::Start(end.saturating_sub(u64::from(backlog)))).await.map_err(|e| Status::internal(e.to_string()))?;
    let socket = UnixStream::connect(dir.join(qemu::CONSOLE))
        .await
        .map_err(|e| Status::unavailable(format!("the VM's console socket: {e}")))?;
    let (mut from_qemu, mut to_qemu) = socket.into_split();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<ConsoleOutput, Status>>(64);

    let follow = tx.clone();
    let watched = dir.clone();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buffer).await {
                Ok(0) => {
                    if follow.is_closed() || qemu::running(&watched).is_none() {
                        return;
                    }
                    tokio::time::sleep(POLL).await;
                }
                Ok(n) => {
                    if follow.send(Ok(ConsoleOutput { data: buffer[..n].to_vec() })).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = follow.send(Err(Status::internal(format!("reading the console log: {e}")))).await;
                    return;
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut sink = vec![0u8; 16 * 1024];
        while matches!(from_qemu.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    tokio::spawn(async move {
        if !typed.is_empty() && to_qemu.write_all(&typed).await.is_err() {
            return;
        }
        while let Some(data) = input.recv().await {
            if to_qemu.write_all(&data).await.is_err() {
                return;
            }
        }
        // The caller hung up: the output side stops at its next look.
        drop(tx);
    });
    Ok(Box::pin(super::stream(rx)))
}
