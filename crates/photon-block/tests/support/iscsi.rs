//! The iSCSI tests' harness: the target started in-process on a free port over `MemDevice`
//! targets, URLs in libiscsi's form, and the shared panic counter (`support`). Real
//! initiators run through `support::run`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use photon_block::iscsi::{serve_with, Access, ChapCredentials, Liveness, StaticTargets, Targets};
use photon_block::{BlockDevice, MemDevice};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The target name most tests use.
pub const TARGET: &str = "iqn.2026-12.io.photoncloud:test";
/// Initiator names for libiscsi's tools.
pub const INITIATOR: &str = "iqn.2026-12.io.photoncloud:initiator";
pub const INITIATOR_2: &str = "iqn.2026-12.io.photoncloud:initiator-2";

/// The NBD harness's panic counter and logging: one hook per test binary.
pub use crate::support::panics;
use crate::support::init;

/// A running target.
pub struct Target {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Target {
    pub async fn start(targets: impl Targets) -> Target {
        Target::start_with(targets, Liveness::default()).await
    }

    /// `start`, pinging quiet initiators as `liveness` says.
    pub async fn start_with(targets: impl Targets, liveness: Liveness) -> Target {
        init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve_with(listener, Arc::new(targets), liveness, shutdown.clone()));
        Target { addr, shutdown, task }
    }

    /// Serves one target, `TARGET`, over `device`.
    pub async fn single(device: &Arc<MemDevice>) -> Target {
        Target::start(StaticTargets::new().with(TARGET, device.clone() as Arc<dyn BlockDevice>)).await
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// libiscsi's URL for LUN `lun` of `target`.
    pub fn url(&self, target: &str, lun: u32) -> String {
        format!("iscsi://127.0.0.1:{}/{target}/{lun}", self.port())
    }

    /// The URL with CHAP credentials (`user%secret@`).
    pub fn chap_url(&self, user: &str, secret: &str, target: &str) -> String {
        format!("iscsi://{user}%{secret}@127.0.0.1:{}/{target}/0", self.port())
    }

    /// The portal URL discovery tools take.
    pub fn portal(&self) -> String {
        format!("iscsi://127.0.0.1:{}", self.port())
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve does not panic");
    }
}

pub fn chap(user: &str, secret: &str) -> Access {
    Access { chap: Some(ChapCredentials { user: user.into(), secret: secret.as_bytes().to_vec() }) }
}

/// Whether a client's combined output says it failed to log in.
pub fn login_failed(out: &std::process::Output) -> bool {
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    !out.status.success() && (said.contains("ogin") || said.contains("connect"))
}
