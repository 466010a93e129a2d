//! One child process under test: started, signalled, killed and restarted, with its output
//! captured in a log file that is printed if the test panics.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How many trailing log lines a failing test prints per process.
const LOG_TAIL_LINES: usize = 200;

pub struct Process {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    log_path: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Process {
    /// A process named `name` (for logs) running `program`, logging to `log_path`.
    pub fn new(name: &str, program: &Path, log_path: &Path) -> Self {
        Self {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            log_path: log_path.to_path_buf(),
            child: None,
            starts: 0,
        }
    }

    pub fn arg(&mut self, arg: impl Into<OsString>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> &mut Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the process (again, after a kill or exit). Output is appended to the log file.
    pub fn start(&mut self) -> &mut Self {
        assert!(self.child.is_none() || self.try_wait().is_some(), "{} is already running", self.name);
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log_path.display()));
        self.starts += 1;
        let _ = writeln!(log, "==== photon-testkit: start #{} of {} ====", self.starts, self.name);
        let err = log.try_clone().unwrap_or_else(|e| panic!("cannot dup log file: {e}"));
        let mut command = Command::new(&self.program);
        command.args(&self.args).envs(self.env.iter().cloned()).stdin(Stdio::null()).stdout(log).stderr(err);
        // If the test process dies, take the server with it instead of leaking it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        self.child = Some(child);
        self
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// How many times the process has been started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            unsafe { libc::kill(pid as i32, signal) };
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process wrote so far, across restarts.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs();
            let lines: Vec<&str> = logs.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "---- log of {} ({}) ----\n{}\n---- end of {} ----",
                self.name,
                self.log_path.display(),
                tail.join("\n"),
                self.name
            );
        }
        self.kill9();
    }
}
