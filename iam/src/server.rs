//! Assembling the server: flaredb first (IAM Requires it), then keys, policies and the first
//! administrator, then the API port's gRPC services, REST routes and `/health`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use photon_api::iam::v1::admin_server::AdminServer;
use photon_api::iam::v1::authz_server::AuthzServer;
use photon_api::iam::v1::tokens_server::TokensServer;
use photon_runtime::{Api, Context, HealthReport, HealthStatus};

use crate::api::admin::AdminService;
use crate::api::authz::AuthzService;
use crate::api::tokens::TokensService;
use crate::config::IamConfig;
use crate::state::Iam;

pub async fn build(
    config: IamConfig,
    context: Context,
    password_file: Option<std::path::PathBuf>,
) -> anyhow::Result<Api> {
    let flaredb_ca = config.flaredb.ca.clone().or_else(|| context.tls.trust.clone());
    let scheme = if context.tls.config.is_some() { "https" } else { "http" };
    let issuer = if config.tokens.issuer.is_empty() {
        let listen = config.server.listen;
        let host = if listen.ip().is_unspecified() { "127.0.0.1".to_string() } else { listen.ip().to_string() };
        format!("{scheme}://{host}:{}", listen.port())
    } else {
        config.tokens.issuer.clone()
    };
    let data_dir = config.server.data_dir.clone();
    let iam = Iam::start(config, flaredb_ca, issuer).await?;
    crate::bootstrap::run(&iam, password_file.as_deref(), &data_dir).await?;
    for service in &iam.config.bootstrap.services.clone() {
        crate::bootstrap::service_account(&iam, service, &data_dir).await?;
    }
    iam.refresh_in_background(context.shutdown.clone(), &context.tasks);

    let connected = std::sync::Arc::new(AtomicBool::new(true));
    watch_database(&iam, connected.clone(), &context);
    Ok(Api::new(move || health(&connected))
        .http(crate::rest::router(iam.clone()))
        .grpc(AdminServer::new(AdminService::new(iam.clone())))
        .grpc(TokensServer::new(TokensService::new(iam.clone())))
        .grpc(AuthzServer::new(AuthzService::new(iam))))
}

/// Probes flaredb every second; `/health` reads the last answer.
fn watch_database(iam: &Iam, connected: std::sync::Arc<AtomicBool>, context: &Context) {
    let (iam, shutdown) = (iam.clone(), context.shutdown.clone());
    context.tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let ok = tokio::time::timeout(Duration::from_secs(2), iam.db.get::<serde_json::Value>("probe"))
                .await
                .is_ok_and(|r| r.is_ok());
            if connected.swap(ok, Ordering::Relaxed) != ok {
                if ok {
                    tracing::info!("flaredb answers again");
                } else {
                    tracing::warn!("flaredb does not answer: serving from cached keys and policies (degraded)");
                }
            }
        }
    });
}

/// `/health`: healthy while flaredb answers; degraded when it does not (tokens still verify
/// and cached policies still decide, but logins and changes fail).
fn health(connected: &AtomicBool) -> HealthReport {
    let ok = connected.load(Ordering::Relaxed);
    HealthReport::new(if ok { HealthStatus::Healthy } else { HealthStatus::Degraded })
        .with("database", if ok { "connected" } else { "unreachable" })
        .with("version", env!("CARGO_PKG_VERSION"))
}
