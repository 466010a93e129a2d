//! One initiator connection from login to close: the login phase under a deadline, then the
//! full feature phase of a discovery or normal session; logs one line when a session opens
//! and one when it closes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::ffp::{self, Session, WINDOW};
use super::login::{self, LoginError, SessionKind};
use super::scsi::reservations::Registry;
use super::scsi::{LogicalUnit, Nexus};
use super::targets::Targets;

/// How long an initiator has from connecting to finishing login, so idle or trickling
/// connections do not hold a task forever. Real initiators need milliseconds.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(
    mut tcp: TcpStream,
    peer: SocketAddr,
    targets: Arc<dyn Targets>,
    registry: Arc<Registry>,
    tsih: u16,
    liveness: super::Liveness,
    shutdown: CancellationToken,
) {
    // PDUs are written whole; Nagle would only delay the last segment of each.
    let _ = tcp.set_nodelay(true);
    let portal = match tcp.local_addr() {
        Ok(portal) => portal,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "iscsi: no local address");
            return;
        }
    };
    let login = tokio::select! {
        _ = shutdown.cancelled() => return,
        r = tokio::time::timeout(LOGIN_TIMEOUT, login::login(&mut tcp, &*targets, tsih, WINDOW)) => r,
    };
    let logged_in = match login {
        Ok(Ok(logged_in)) => logged_in,
        Ok(Err(LoginError::Refused { status, reason })) => {
            tracing::info!(%peer, class = status.0, detail = status.1, %reason, "iscsi login refused");
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "iscsi: login failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "iscsi: login did not finish within {LOGIN_TIMEOUT:?}");
            return;
        }
    };
    let nexus = Nexus::new(&logged_in.initiator, logged_in.isid);
    let (unit, target) = match logged_in.kind {
        SessionKind::Discovery => (None, None),
        SessionKind::Normal { target, device } => {
            let unit = LogicalUnit::new(&target, device, registry.for_target(&target));
            unit.nexus_joined(&nexus);
            (Some(Arc::new(unit)), Some(target))
        }
    };
    let name = target.clone().unwrap_or_else(|| "(discovery)".into());
    let p = logged_in.params;
    tracing::info!(
        target = %name, initiator = %nexus.port, %peer, tsih = logged_in.tsih, header_digest = p.header_digest,
        data_digest = p.data_digest, immediate_data = p.immediate_data, initial_r2t = p.initial_r2t,
        "iscsi session opened"
    );
    let session = Session {
        params: p,
        unit: unit.clone(),
        target,
        nexus: nexus.clone(),
        targets,
        portal,
        exp_cmd_sn: logged_in.exp_cmd_sn,
        stat_sn: logged_in.stat_sn,
        liveness,
    };
    let (result, commands) = ffp::run(tcp, session, shutdown).await;
    // A logout released the nexus before it was answered; doing it again could reach a
    // session the initiator has since opened with the same ISID.
    if let (Some(unit), false) = (&unit, matches!(result, Ok(ffp::Ending::Logout))) {
        unit.nexus_lost(&nexus);
    }
    match result {
        Ok(ending) => tracing::info!(target = %name, %peer, commands, ?ending, "iscsi session closed"),
        Err(e) => tracing::warn!(target = %name, %peer, commands, error = %e, "iscsi session closed on an error"),
    }
}
