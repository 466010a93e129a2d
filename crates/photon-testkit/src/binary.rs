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

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}
