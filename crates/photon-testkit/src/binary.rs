//! Finding the workspace's built binaries and free ports.

use std::net::TcpListener;
use std::path::PathBuf;

/// The path of a binary built from this workspace, e.g. `binary("photon-test-service")`.
///
/// Looks in `$PHOTON_BIN_DIR` first, then in the cargo target directory of the running test
/// (`target/<profile>/`). Panics with the build command to run if it is not there, because
/// `cargo nextest run` builds only the binaries of the package under test.
pub fn binary(name: &str) -> PathBuf {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("PHOTON_BIN_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/<test-binary> → target/<profile>
        if let Some(profile_dir) = exe.parent().and_then(|deps| deps.parent()) {
            dirs.push(profile_dir.to_path_buf());
        }
    }
    for dir in &dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "binary {name} not found in {dirs:?}; build it first with `cargo build --workspace --bins` \
         (the README's test command does)"
    );
}

/// Ports handed out, below the kernel's ephemeral range: a server binding one later can never
/// collide with a client's source port, which the kernel picks from the ephemeral range.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Port claims this process holds (lock files), released when the test process exits.
static CLAIMED: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());

/// A TCP port on 127.0.0.1 that is free and that no other test process will be given while
/// this one runs: each port is claimed with a lock file, because nextest runs tests in separate
/// processes and "bind port 0, then close" leaves a window in which another test's server can
/// take the port first.
pub fn free_port() -> u16 {
    use std::os::fd::AsRawFd;
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let span = (PORTS.end - PORTS.start) as u64;
    for step in 0..span {
        let port =
            PORTS.start + ((seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16).wrapping_add(step * 7919) % span) as u16;
        let path = std::env::temp_dir().join(format!("photon-test-port-{port}.lock"));
        let Ok(file) = std::fs::File::create(&path) else { continue };
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            CLAIMED.lock().unwrap_or_else(|p| p.into_inner()).push(file);
            return port;
        }
    }
    panic!("no free port in {PORTS:?}");
}

/// Runs `command` with `stdin` written to its standard input, and waits for its output. A
/// program that stops reading early (curl refusing a body) is not an error: what it did not
/// read does not matter.
pub fn output_with_stdin(command: &mut std::process::Command, stdin: &str) -> std::process::Output {
    use std::process::Stdio;
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the command runs");
    if let Some(mut input) = child.stdin.take() {
        let _ = std::io::Write::write_all(&mut input, stdin.as_bytes());
    }
    child.wait_with_output().expect("the command runs")
}
