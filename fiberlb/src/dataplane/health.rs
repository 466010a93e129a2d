//! Active health checks: one prober per backend and check of its pool, started and stopped by a
//! reconciler as the plan changes. A prober probes every interval (TCP connect, or an HTTP(S)
//! GET expecting a status) within the check's timeout; `fall` failures in a row mark the check
//! failing for that backend, `rise` successes in a row passing again. A backend takes new
//! traffic only while none of its checks fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use photon_reconcile::{Queue, Reconciler, Requeue};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::model::backend::AdminState;
use crate::model::healthcheck::{HealthCheckSpec, Probe};

use super::stats::BackendStats;
use super::Shared;

/// A prober's key: the backend's key and the check's name.
pub type ProbeKey = (String, String);

struct Running {
    target: SocketAddr,
    spec: HealthCheckSpec,
    stop: CancellationToken,
}

pub struct Probes {
    shared: Arc<Shared>,
    running: Mutex<BTreeMap<ProbeKey, Running>>,
    queue: Arc<Queue<ProbeKey>>,
}

impl Probes {
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Self { shared, running: Mutex::default(), queue: Arc::default() })
    }

    pub fn queue(&self) -> Arc<Queue<ProbeKey>> {
        self.queue.clone()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<ProbeKey, Running>> {
        match self.running.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// What should run: every check of every pool for each backend that is not disabled.
    fn desired(&self) -> BTreeMap<ProbeKey, (SocketAddr, HealthCheckSpec)> {
        let plan = self.shared.plan();
        let mut desired = BTreeMap::new();
        for (pool, backend) in plan.backends() {
            if backend.spec.admin_state == AdminState::Disabled {
                continue;
            }
            for (check, spec) in &pool.health {
                let target = SocketAddr::new(backend.spec.address, backend.spec.port);
                desired.insert((backend.key.clone(), check.clone()), (target, spec.clone()));
            }
        }
        desired
    }
}

impl Reconciler for Probes {
    type Key = ProbeKey;

    fn keys(&self) -> Vec<ProbeKey> {
        let mut keys: BTreeSet<ProbeKey> = self.desired().into_keys().collect();
        keys.extend(self.running().keys().cloned());
        keys.into_iter().collect()
    }

    async fn reconcile(&self, key: &ProbeKey) -> Result<Requeue, String> {
        let desired = self.desired().remove(key);
        let mut running = self.running();
        if let Some(current) = running.get(key) {
            if desired.as_ref().is_some_and(|(target, spec)| *target == current.target && *spec == current.spec) {
                return Ok(Requeue::Done);
            }
            current.stop.cancel();
            running.remove(key);
        }
        let stats = self.shared.stats.of(&key.0);
        let Some((target, spec)) = desired else {
            // The check is gone: it no longer holds the backend down.
            stats.set_check(&key.1, true);
            return Ok(Requeue::Done);
        };
        let stop = CancellationToken::new();
        tokio::spawn(probe_loop(key.clone(), target, spec.clone(), stats, stop.clone()));
        running.insert(key.clone(), Running { target, spec, stop });
        Ok(Requeue::Done)
    }
}

async fn probe_loop(key: ProbeKey, target: SocketAddr, spec: HealthCheckSpec, stats: Arc<BackendStats>, stop: CancellationToken) {
    let (mut passes, mut fails) = (0u32, 0u32);
    let mut passing = true;
    let mut every = tokio::time::interval(Duration::from_millis(spec.interval_ms));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let result = match tokio::time::timeout(Duration::from_millis(spec.timeout()), probe(target, &spec)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", spec.timeout())),
        };
        match result {
            Ok(()) => {
                (passes, fails) = (passes + 1, 0);
                if !passing && passes >= spec.rise {
                    passing = true;
                    stats.set_check(&key.1, true);
                    tracing::info!(backend = %key.0, check = %key.1, %target, "backend up: its health check passes again");
                }
            }
            Err(error) => {
                (passes, fails) = (0, fails + 1);
                if passing && fails >= spec.fall {
                    passing = false;
                    stats.set_check(&key.1, false);
                    tracing::warn!(backend = %key.0, check = %key.1, %target, %error, "backend down: its health check fails");
                }
            }
        }
    }
}

/// One probe of `target`.
async fn probe(target: SocketAddr, spec: &HealthCheckSpec) -> Result<(), String> {
    let stream = TcpStream::connect(target).await.map_err(|e| format!("connect: {e}"))?;
    match spec.probe {
        Probe::Tcp => Ok(()),
        Probe::Http => http_get(stream, target, spec).await,
        Probe::Https => {
            let tls = super::tls::insecure_connector()
                .connect(super::tls::server_name(target), stream)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            http_get(tls, target, spec).await
        }
    }
}

async fn http_get<S>(stream: S, target: SocketAddr, spec: &HealthCheckSpec) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(connection);
    let request = hyper::Request::get(spec.path.as_str())
        .header(hyper::header::HOST, target.to_string())
        .header(hyper::header::USER_AGENT, "fiberlb-health-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status().as_u16();
    if status == spec.expected_status {
        Ok(())
    } else {
        Err(format!("status {status}, expected {}", spec.expected_status))
    }
}
