//! Live migration, the agents' part. The target's agent starts QEMU with the VM's devices (its
//! volumes opened through the VM's own attachments, which share the volume's writer lease; its
//! taps opened but its ports still bound to the source) waiting for the stream over mutual TLS
//! (each side's node certificate checked against the platform CA), and reports where it
//! listens. The source's agent then sends the running guest there (`migrate`) and reports
//! how it ended, with QEMU's own measure of the downtime. After the scheduler switches the VM,
//! the target's agent binds its ports to its taps (PrismNET moves the VM's address here) and
//! the source's ends its QEMU, paused since the switch-over.

use std::path::Path;
use std::time::{Duration, Instant};

use photon_reconcile::Requeue;
use photon_resource::Resource;
use serde_json::json;

use super::qmp::Qmp;
use super::{qemu, Agent};
use crate::error::{PlasmavmcError, Result};
use crate::model::status::{self, Migration, Phase, VmStatus};
use crate::model::vm::VmSpec;

/// A file in the run directory of a VM that migrated in, until its ports are bound here.
pub const ARRIVED: &str = "arrived";
/// Where the target's QEMU listens, once it does (the status may not say so yet when the agent
/// looks again: its copy can lag its own write).
const LISTENING: &str = "listening";

/// How often a migration is looked at while it runs.
const POLL: Duration = Duration::from_millis(20);

impl Agent {
    /// The migration's TLS files in `<dir>/mig-tls/`: the platform CA, and this node's
    /// certificate and key — a target serves the stream with them, a source proves itself with
    /// them (mutual TLS: only a platform node can send a guest in).
    pub(super) fn migration_tls(&self, dir: &Path, server: bool) -> Result<()> {
        let tls = dir.join(qemu::MIGRATION_TLS);
        std::fs::create_dir_all(&tls).map_err(|e| PlasmavmcError::io(format!("creating {}", tls.display()), e))?;
        let missing = |what: &str| PlasmavmcError::Qemu {
            what: "live migration".into(),
            message: format!("this node has no {what} to secure the stream with"),
        };
        let ca = self.settings.ca.as_ref().ok_or_else(|| missing("CA"))?;
        let (cert, key) = self.settings.identity.clone().ok_or_else(|| missing("certificate"))?;
        let role = if server { "server" } else { "client" };
        let files =
            vec![(ca.clone(), "ca-cert.pem".to_string()), (cert, format!("{role}-cert.pem")), (key, format!("{role}-key.pem"))];
        for (from, name) in files {
            super::users::copy_in(&from, &tls.join(&name))
                .map_err(|e| PlasmavmcError::io(format!("copying {}", from.display()), e))?;
        }
        // QEMU reads them as its own user.
        self.hand_over(dir).map(|_| ())
    }

    /// Writes the migration's progress as `change` makes it, unless the migration changed.
    async fn progress(&self, key: &str, expected: &Migration, change: impl Fn(&mut Migration) + Send + Sync) -> Result<()> {
        let mut write = |_: &Resource<VmSpec>, s: &VmStatus| {
            let current = s.migration.as_ref().filter(|m| *m == expected)?;
            let mut next = s.clone();
            let mut migration = current.clone();
            change(&mut migration);
            next.migration = Some(migration);
            Some(next)
        };
        match status::write(&self.store, key, &mut write, &status::unguarded).await {
            Ok(_) | Err(photon_resource::ResourceError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn fail(&self, key: &str, m: &Migration, reason: String) -> Result<Requeue> {
        tracing::warn!(vm = %key, target = %m.target, %reason, "live migration failed");
        self.progress(key, m, move |next| {
            next.phase = Phase::Failed;
            next.reason = Some(reason.clone());
        })
        .await?;
        Ok(Requeue::Done)
    }

    /// The target's part.
    pub(super) async fn incoming(&self, dir: &Path, key: &str, vm: &Resource<VmSpec>, m: &Migration) -> Result<Requeue> {
        let uid = &vm.metadata.uid;
        match m.phase {
            Phase::Failed => {
                self.remove(uid).await?;
                Ok(Requeue::Done)
            }
            Phase::Listening | Phase::Migrating | Phase::Completed => {
                if qemu::running(dir).is_none() && !super::locked(&self.launching).contains_key(uid) {
                    return self.fail(key, m, format!("the target's QEMU on {} ended", self.settings.node)).await;
                }
                Ok(Requeue::Done)
            }
            Phase::Prepare => {
                let pending = super::locked(&self.launching).remove(uid);
                let Some((mut child, since)) = pending else {
                    if qemu::running(dir).is_some() {
                        if let Ok(uri) = std::fs::read_to_string(dir.join(LISTENING)) {
                            // Listening already (this agent's copy of the status lags): said again.
                            self.progress(key, m, move |next| {
                                next.phase = Phase::Listening;
                                next.uri = Some(uri.clone());
                            })
                            .await?;
                            return Ok(Requeue::Done);
                        }
                        // Started by an earlier agent that did not get to listen: start afresh.
                        qemu::kill(dir).await;
                    }
                    let child = match self.start(dir, key, vm, true).await {
                        Ok(child) => child,
                        Err(e) => return self.fail(key, m, format!("the target could not start QEMU: {e}")).await,
                    };
                    std::fs::write(dir.join(ARRIVED), b"").map_err(|e| PlasmavmcError::io("marking the run directory", e))?;
                    super::locked(&self.launching).insert(uid.clone(), (child, Instant::now()));
                    return Ok(Requeue::After(super::LAUNCH_POLL));
                };
                if let Ok(Some(exit)) = child.try_wait() {
                    return self.fail(key, m, format!("the target's QEMU exited ({exit}): {}", qemu::said(dir))).await;
                }
                if !qemu::answers(dir).await {
                    if since.elapsed() > super::LAUNCH_TIMEOUT {
                        let _ = child.start_kill();
                        return self.fail(key, m, "the target's QEMU never answered".into()).await;
                    }
                    super::locked(&self.launching).insert(uid.clone(), (child, since));
                    return Ok(Requeue::After(super::LAUNCH_POLL));
                }
                let port = free_port().map_err(|e| PlasmavmcError::io("choosing a port for the migration", e))?;
                let mut qmp = Qmp::connect(&dir.join(qemu::QMP)).await?;
                qmp.execute("migrate-set-parameters", Some(json!({"tls-creds": qemu::MIGRATION_TLS_IN}))).await?;
                qmp.execute("migrate-incoming", Some(json!({"uri": format!("tcp:0.0.0.0:{port}")}))).await?;
                let uri = format!("tcp:{}:{port}", self.settings.migration_host);
                std::fs::write(dir.join(LISTENING), &uri).map_err(|e| PlasmavmcError::io("recording where QEMU listens", e))?;
                tracing::info!(vm = %key, %uri, "live migration: waiting for the stream");
                self.progress(key, m, move |next| {
                    next.phase = Phase::Listening;
                    next.uri = Some(uri.clone());
                })
                .await?;
                Ok(Requeue::Done)
            }
        }
    }

    /// The source's part.
    pub(super) async fn outgoing(&self, dir: &Path, key: &str, vm: &Resource<VmSpec>, m: &Migration) -> Result<Requeue> {
        match m.phase {
            Phase::Prepare | Phase::Completed | Phase::Failed => Ok(Requeue::Done),
            Phase::Listening => {
                let Some(uri) = m.uri.clone() else { return self.fail(key, m, "the target gave no address".into()).await };
                self.migration_tls(dir, false)?;
                let mut qmp = Qmp::connect(&dir.join(qemu::QMP)).await?;
                // Sent already (this agent's copy of the status lags its own write): not again.
                let info = qmp.execute("query-migrate", None).await?;
                if matches!(info["status"].as_str(), Some("setup" | "active" | "pre-switchover" | "device")) {
                    self.progress(key, m, |next| next.phase = Phase::Migrating).await?;
                    return Ok(Requeue::After(POLL));
                }
                let creds = json!({
                    "qom-type": "tls-creds-x509",
                    "id": qemu::MIGRATION_TLS_OUT,
                    "endpoint": "client",
                    "dir": dir.join(qemu::MIGRATION_TLS).display().to_string(),
                    "verify-peer": true,
                });
                // Made by an earlier migration from this QEMU: the same files.
                super::tolerate(qmp.execute("object-add", Some(creds)).await, "duplicate")?;
                let host = uri.trim_start_matches("tcp:").rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default();
                qmp.execute("migrate-set-parameters", Some(json!({"tls-creds": qemu::MIGRATION_TLS_OUT, "tls-hostname": host})))
                    .await?;
                if let Err(e) = qmp.execute("migrate", Some(json!({"uri": uri}))).await {
                    return self.fail(key, m, e.to_string()).await;
                }
                tracing::info!(vm = %key, target = %m.target, %uri, uid = %vm.metadata.uid, "live migration: sending the guest");
                self.progress(key, m, |next| next.phase = Phase::Migrating).await?;
                Ok(Requeue::After(POLL))
            }
            Phase::Migrating => {
                let mut qmp = Qmp::connect(&dir.join(qemu::QMP)).await?;
                let info = qmp.execute("query-migrate", None).await?;
                match info["status"].as_str().unwrap_or_default() {
                    "completed" => {
                        let (downtime, total) = (info["downtime"].as_u64(), info["total-time"].as_u64());
                        tracing::info!(vm = %key, target = %m.target, downtime_ms = downtime, total_ms = total, "live migration: the guest crossed");
                        self.progress(key, m, move |next| {
                            next.phase = Phase::Completed;
                            next.downtime_ms = downtime;
                            next.total_ms = total;
                        })
                        .await?;
                        Ok(Requeue::Done)
                    }
                    "failed" | "cancelled" => {
                        let why = info["error-desc"].as_str().unwrap_or("QEMU gave no reason").to_string();
                        // The guest carries on here.
                        let _ = qmp.execute("cont", None).await;
                        self.fail(key, m, why).await
                    }
                    _ => Ok(Requeue::After(POLL)),
                }
            }
        }
    }

    /// A VM that migrated in is this node's now: its ports are bound to its taps here.
    pub(super) async fn arrived(&self, dir: &Path, key: &str, vm: &Resource<VmSpec>) -> Result<()> {
        if let Some(net) = &self.network {
            // The NICs the guest came with (one detached meanwhile: the running VM's
            // reconcile takes it out next).
            let planned = crate::network::planned(vm);
            for plugged in VmStatus::of(vm).nics {
                let Some((port, nic)) = planned.iter().zip(&vm.spec.nics).find(|(p, _)| p.path() == plugged.port) else { continue };
                net.plug(port, nic, plugged.slot, &self.settings.node, &plugged.tap)
                    .await
                    .map_err(|e| PlasmavmcError::Network(format!("port {}: {e}", port.path())))?;
            }
        }
        let _ = std::fs::remove_file(dir.join(LISTENING));
        std::fs::remove_file(dir.join(ARRIVED)).map_err(|e| PlasmavmcError::io("unmarking the run directory", e))?;
        tracing::info!(vm = %key, "a migrated VM is this node's now; its ports are bound here");
        Ok(())
    }
}

/// A TCP port free on this node now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("0.0.0.0", 0))?.local_addr()?.port())
}
