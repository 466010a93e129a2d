//! Assembly: the API over the resources in chainfire (with the values the server assigns),
//! and, with the dataplane on, this node's registration, the resources and nodes followed into
//! the dataplane's plan, and the VPCs reconciled as it changes; `/health` beside them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use photon_auth::AuthClient;
use photon_resource::{Mirror, Resources, Store};
use photon_runtime::{Api, Context, HealthReport, HealthStatus};

use crate::config::PrismnetConfig;
use crate::dataplane::nodes::{self, NodeRecord};
use crate::dataplane::{lock, Dataplane, Settings};
use crate::ipam::{self, Pools};
use crate::model;

pub async fn build(config: PrismnetConfig, context: Context) -> anyhow::Result<Api> {
    let trust = context.tls.trust.clone();
    let store = Store::connect(&config.chainfire, trust.clone()).await?;
    let layout = model::layout();
    let resources_copy = Arc::new(Mutex::new(Mirror::default()));

    let dataplane = if config.dataplane.enabled {
        let section = &config.dataplane;
        let node = section.node.clone().unwrap_or_else(photon_runtime::host_name);
        let vtep = section.vtep_address.unwrap_or_else(nodes::default_vtep);
        tracing::info!(%node, %vtep, underlay_mtu = section.underlay_mtu, netns_prefix = %section.netns_prefix, "dataplane on");
        let settings = Settings {
            node: node.clone(),
            vtep,
            underlay_mtu: section.underlay_mtu,
            netns_prefix: section.netns_prefix.clone(),
            external: config.external.interface.clone(),
        };
        let dataplane = Dataplane::new(layout.clone(), settings)
            .map_err(|e| anyhow::anyhow!("the dataplane needs CAP_NET_ADMIN and CAP_SYS_ADMIN (or dataplane.enabled = false): {e}"))?;
        context.tasks.spawn(nodes::register(store.clone(), node, NodeRecord { vtep }, context.shutdown.clone()));
        let node_copy = Arc::new(Mutex::new(Mirror::default()));
        let fed = dataplane.clone();
        context.tasks.spawn(photon_resource::follow(store.clone(), nodes::PREFIX.to_string(), context.shutdown.clone(), move |changes| {
            let mut copy = lock(&node_copy);
            copy.apply(changes);
            fed.apply_nodes(nodes::addresses(&copy));
        }));
        let resync = Duration::from_millis(section.resync_ms.max(100));
        context.tasks.spawn(photon_reconcile::run(dataplane.clone(), dataplane.queue(), resync, context.shutdown.clone()));
        Some(dataplane)
    } else {
        tracing::info!("dataplane off: this node serves the API only");
        None
    };
    let (feed, fed) = (resources_copy.clone(), dataplane.clone());
    context.tasks.spawn(photon_resource::follow(store.clone(), layout.prefix(), context.shutdown.clone(), move |changes| {
        let mut copy = lock(&feed);
        copy.apply(changes);
        if let Some(dataplane) = &fed {
            dataplane.apply_resources(copy.items());
        }
    }));

    let auth = config.iam.auth_config([config.chainfire.ca.as_deref(), trust.as_deref()]);
    let auth = Arc::new(AuthClient::new(auth).map_err(anyhow::Error::msg)?);
    let pools = Pools { floating: config.external.floating_cidr, service: config.ipam.service_cidr };
    let resources = ipam::assigners(Resources::new(store.clone(), layout.clone()), pools);
    let (router, rules, grpc) = crate::api::router(resources, auth.clone());
    let guard = photon_auth::Guard::new(auth, rules);
    let metrics = dataplane.as_ref().map(|d| d.metrics.clone());
    let mut api = Api::new(move || health(&store, &resources_copy, dataplane.as_deref())).grpc(grpc).http(router).guard(move |router| guard.apply(router));
    if let Some(metrics) = metrics {
        metrics.register(api.registry());
    }
    Ok(api)
}

/// Healthy while the copy of the resources is current and every VPC of this node converged;
/// degraded while chainfire cannot be reached, before the first copy, or while a VPC fails to
/// converge (the dataplane keeps what it built).
fn health(store: &Store, copy: &Mutex<Mirror>, dataplane: Option<&Dataplane>) -> HealthReport {
    let loaded = lock(copy).revision > 0;
    let connected = store.connected();
    let (vpcs, ports, failing) = dataplane.map(|d| d.census()).unwrap_or_default();
    let state = match dataplane {
        None => "off".to_string(),
        Some(_) if failing > 0 => format!("{failing} VPCs failing to converge"),
        Some(_) => "converged".to_string(),
    };
    let status = if connected && loaded && failing == 0 { HealthStatus::Healthy } else { HealthStatus::Degraded };
    HealthReport::new(status)
        .with("vpcs", vpcs as u64)
        .with("ports", ports as u64)
        .with("dataplane", state)
        .with("chainfire", if connected { "connected" } else { "unreachable" })
}
