//! Assembling chainfire on the runtime: start this member's Raft node, then hand the runtime
//! the etcd services and the health check for the API port.

use std::time::Duration;

use photon_api::etcd::etcdserverpb::cluster_server::ClusterServer;
use photon_api::etcd::etcdserverpb::kv_server::KvServer;
use photon_api::etcd::etcdserverpb::lease_server::LeaseServer;
use photon_api::etcd::etcdserverpb::maintenance_server::MaintenanceServer;
use photon_api::etcd::etcdserverpb::watch_server::WatchServer;
use photon_runtime::{Api, Context};

use crate::config::ChainfireConfig;
use crate::etcd::{ClusterService, KvService, LeaseService, MaintenanceService, WatchService};
use crate::leases::LeaseKeeper;
use crate::node::Node;

/// gRPC's own framing allowance on top of `max_request_bytes`, as etcd grants it, so an
/// oversized request reaches our check and gets etcd's "request is too large".
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

pub async fn build(config: ChainfireConfig, context: Context) -> anyhow::Result<Api> {
    let node = Node::start(&config, &context).await?;
    let max_message = config.limits.max_request_bytes + GRPC_OVERHEAD_BYTES;
    let kv = KvServer::new(KvService::new(node.clone(), config.limits.clone())).max_decoding_message_size(max_message);
    let watch = WatchServer::new(WatchService::new(
        node.clone(),
        context.tasks.clone(),
        context.shutdown.clone(),
        Duration::from_millis(config.watch.progress_notify_ms),
    ));
    let keeper = LeaseKeeper::default();
    context.tasks.spawn(keeper.clone().run(node.clone(), context.shutdown.clone()));
    // etcd's minimum TTL: one and a half election timeouts, so a lease outlives a failover.
    let min_ttl = ((config.raft.election_timeout_ms as f64 * 1.5) / 1000.0).ceil().max(1.0) as i64;
    let lease = LeaseServer::new(LeaseService::new(
        node.clone(),
        keeper,
        context.tasks.clone(),
        context.shutdown.clone(),
        min_ttl,
    ));
    let scheme = if context.tls.config.is_some() { "https" } else { "http" };
    let client_url = config.raft.advertised_client_url(scheme, config.server.listen);
    node.publish_client_urls(vec![client_url.clone()], &context);
    let members = crate::membership::start(&config, &node, &context, &client_url).await?.map(|g| g.members());
    let health_node = node.clone();
    let health = move || {
        let report = health_node.health();
        match &members {
            Some(members) => {
                let members = members.borrow();
                let alive = members.iter().filter(|m| m.state != photon_gossip::MemberState::Dead).count();
                let node = members.iter().find(|m| m.is_self).map(|m| m.node.clone()).unwrap_or_default();
                report.with("node", node).with("nodes_alive", alive)
            }
            None => report,
        }
    };
    Ok(Api::new(health)
        .http(crate::rest::router(node.clone(), config.raft.fault_injection))
        .grpc(kv)
        .grpc(watch)
        .grpc(lease)
        .grpc(MaintenanceServer::new(MaintenanceService::new(node.clone())))
        .grpc(ClusterServer::new(ClusterService::new(node.clone(), client_url))))
}
