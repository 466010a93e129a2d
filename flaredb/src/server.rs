//! Assembling the server: chainfire first (FlareDB Requires it), then the store and its
//! regions, the background work, and the API port's gRPC services, REST routes and `/health`.

use photon_api::flaredb::v1::kv_server::KvServer;
use photon_api::flaredb::v1::regions_server::RegionsServer;
use photon_raft::openraft::ServerState;
use photon_runtime::{Api, Context, HealthReport, HealthStatus};

use crate::api::kv::KvService;
use crate::api::regions::RegionsService;
use crate::chainfire::Chainfire;
use crate::config::FlaredbConfig;
use crate::store::Store;

pub async fn build(config: FlaredbConfig, context: Context) -> anyhow::Result<Api> {
    let chainfire_ca = config.chainfire.ca.clone().or_else(|| context.tls.trust.clone());
    let chainfire = Chainfire::connect(&config.chainfire, chainfire_ca).await?;
    chainfire.watch_health(context.shutdown.clone(), &context.tasks);
    let store = Store::start(&config, &context, chainfire.clone()).await?;
    let scheme = if context.tls.config.is_some() { "https" } else { "http" };
    let api_url = config.raft.advertised_api_url(scheme, config.server.listen);
    let peer_addr = config.raft.advertised();
    crate::background::start(&store, &chainfire, api_url.clone(), peer_addr, context.shutdown.clone(), &context.tasks);

    let (health_store, health_link) = (store.clone(), chainfire.clone());
    let max_message = config.limits.max_value_bytes.saturating_mul(2).max(4 << 20);
    Ok(Api::new(move || health(&health_store, &health_link))
        .http(crate::rest::router(store.clone(), config.raft.fault_injection))
        .grpc(
            KvServer::new(KvService::new(store.clone(), context.tasks.clone(), context.shutdown.clone()))
                .max_decoding_message_size(max_message),
        )
        .grpc(RegionsServer::new(RegionsService::new(store, api_url))))
}

/// `/health`: healthy while every region has a leader and chainfire answers; degraded (still
/// serving the regions it knows) while chainfire does not; unhealthy when a region has no
/// leader.
fn health(store: &Store, chainfire: &Chainfire) -> HealthReport {
    let regions = store.regions();
    let mut leading = 0;
    let mut leaderless = 0;
    let mut role = "follower";
    for region in &regions {
        let metrics = region.raft.metrics().borrow().clone();
        match metrics.state {
            ServerState::Leader => leading += 1,
            ServerState::Candidate => role = "candidate",
            ServerState::Learner => role = "learner",
            _ => {}
        }
        if metrics.current_leader.is_none() {
            leaderless += 1;
        }
    }
    if leading == regions.len() && leading > 0 {
        role = "leader";
    }
    let connected = chainfire.connected();
    let status = if leaderless > 0 {
        HealthStatus::Unhealthy
    } else if !connected {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    HealthReport::new(status)
        .with("raft", role)
        .with("chainfire", if connected { "connected" } else { "unreachable" })
        .with("regions", regions.len())
        .with("leading", leading)
}
