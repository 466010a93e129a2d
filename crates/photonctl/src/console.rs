//! `photonctl vm console`: a VM's serial console over PlasmaVMC's gRPC stream. The terminal
//! is put in raw mode while attached (restored on the way out, whatever happens); Ctrl-]
//! detaches, as telnet's escape does.

use std::io::{Read, Write};

use photon_api::plasmavmc::v1::console_client::ConsoleClient;
use photon_api::plasmavmc::v1::ConsoleInput;

use crate::dns::Owner;
use crate::rest::Located;

/// Ctrl-].
const DETACH: u8 = 0x1d;

/// The terminal's settings while raw, put back on drop.
struct Raw(Option<libc::termios>);

impl Raw {
    fn enter() -> Self {
        // SAFETY: termios calls on stdin with a zeroed struct they fill in.
        unsafe {
            if libc::isatty(0) != 1 {
                return Self(None);
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return Self(None);
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(0, libc::TCSANOW, &raw);
            Self(Some(saved))
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores what tcgetattr gave.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}

pub async fn attach(located: &Located, owner: &Owner, vm: &str, backlog: u32) -> anyhow::Result<()> {
    let options = photon_client::ChannelOptions { ca: Some(located.ca.clone()), ..Default::default() };
    let channel = photon_client::lazy_channel(&located.base, &options)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<ConsoleInput>(16);
    let first = ConsoleInput { org: owner.org.clone(), project: owner.project.clone(), vm: vm.to_string(), backlog, data: Vec::new() };
    tx.send(first).await?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
    let mut request = tonic::Request::new(stream);
    request.metadata_mut().insert("authorization", format!("Bearer {}", located.token).parse()?);
    let mut output = ConsoleClient::new(channel)
        .attach(request)
        .await
        .map_err(|e| anyhow::anyhow!("plasmavmc refused the console: {}", e.message()))?
        .into_inner();
    eprintln!("attached to {vm}'s console (Ctrl-] detaches)\r");
    let raw = Raw::enter();
    let (detach_tx, mut detached) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buffer = [0u8; 1024];
        loop {
            let n = match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let typed = &buffer[..n];
            let (data, done) = match typed.iter().position(|b| *b == DETACH) {
                Some(at) => (typed[..at].to_vec(), true),
                None => (typed.to_vec(), false),
            };
            if !data.is_empty() && tx.blocking_send(ConsoleInput { data, ..Default::default() }).is_err() {
                break;
            }
            if done {
                break;
            }
        }
        let _ = detach_tx.send(());
    });
    let mut stdout = std::io::stdout();
    let outcome = loop {
        tokio::select! {
            _ = &mut detached => break Ok(()),
            message = output.message() => match message {
                Ok(Some(chunk)) => {
                    stdout.write_all(&chunk.data)?;
                    stdout.flush()?;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(anyhow::anyhow!("the console ended: {}", e.message())),
            },
        }
    };
    drop(raw);
    eprintln!("\ndetached from {vm}'s console");
    outcome
}
