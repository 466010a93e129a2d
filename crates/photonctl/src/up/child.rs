//! One service process run by `photonctl up`: its own process group (so a terminal's Ctrl-C
//! reaches only photonctl, which then stops services in order), a parent-death signal (so a
//! killed photonctl does not leave services behind), and its output forwarded line by line to
//! the terminal and to `<data>/logs/<service>.log`.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use std::io::Write;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::task::JoinSet;

pub struct Child {
    process: tokio::process::Child,
    forwarders: JoinSet<()>,
}

impl Child {
    pub fn spawn(
        name: &'static str,
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
        log_file: PathBuf,
    ) -> std::io::Result<Self> {
        let mut command = Command::new(binary);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut process = command.spawn()?;
        let mut forwarders = JoinSet::new();
        if let Some(out) = process.stdout.take() {
            forwarders.spawn(forward(name, out, log_file.clone()));
        }
        if let Some(err) = process.stderr.take() {
            forwarders.spawn(forward(name, err, log_file));
        }
        Ok(Self { process, forwarders })
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// The exit status, if the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.process.try_wait().ok().flatten()
    }

    /// SIGTERM, then SIGKILL if it has not exited within `timeout`. Returns how it ended.
    pub async fn stop(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(pid) = self.pid() {
            // SAFETY: plain syscall on a child we own and have not reaped.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let status = match tokio::time::timeout(timeout, self.process.wait()).await {
            Ok(Ok(status)) => status,
            _ => {
                let _ = self.process.kill().await;
                self.process.wait().await.unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL))
            }
        };
        while self.forwarders.join_next().await.is_some() {}
        status
    }
}

/// Copies a service's output to the terminal and its log file, a line at a time. The file is
/// written with plain blocking writes on purpose: tokio::fs would start blocking-pool threads,
/// and with more than one thread a killed photonctl hands its children from thread to thread,
/// firing their parent-death signal once per hop (a second SIGTERM means "exit now").
async fn forward(name: &'static str, stream: impl AsyncRead + Unpin, log_file: PathBuf) {
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&log_file).ok();
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{name:>13} | {line}");
        if let Some(file) = log.as_mut() {
            let _ = file.write_all(format!("{line}\n").as_bytes());
        }
    }
}
