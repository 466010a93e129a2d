//! Assembly: the API over the resources in chainfire (with the values the server assigns),
//! and, with the dataplane on, this node's registration, the resources and nodes followed into
//! the dataplane's plan, and the VPCs reconciled as it changes; with `dns.flashdns` set, the
//! registrar of ports' names (run by whichever node holds its claim); `/health` beside them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use photon_auth::service::ServiceToken;
use photon_auth::section::AccountKey;
use photon_auth::AuthClient;
use photon_resource::{Mirror, Resources, Store};
use photon_runtime::{Api, Context, HealthReport, HealthStatus};

use crate::config::PrismnetConfig;
use crate::dataplane::nodes::{self, NodeRecord};
use crate::dataplane::{lock, Dataplane, Settings};
use crate::dns::flashdns::FlashDns;
use crate::dns::registrar::Registrar;
use crate::dns::{self, Naming};
use crate::ipam::{self, Pools};
use crate::model;

pub async fn build(config: PrismnetConfig, context: Context) -> anyhow::Result<Api> {
    let trust = context.tls.trust.clone();
    let store = Store::connect(&config.chainfire, trust.clone()).await?;
    let layout = model::layout();
    let resources_copy = Arc::new(Mutex::new(Mirror::default()));

    let node = config.dataplane.node.clone().unwrap_or_else(photon_runtime::host_name);
    let auth = config.iam.auth_config([config.chainfire.ca.as_deref(), trust.as_deref()]);
    let naming = match &config.dns.flashdns {
        Some(_) => Some(Naming::new(&config.dns.domain).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let registrar = match (&naming, config.iam.account().map_err(anyhow::Error::msg)?) {
        (Some(naming), Some(key)) => {
            Some(registrar(&config, &context, &store, naming.clone(), key, &layout, auth.ca.clone(), node.clone())?)
        }
        (Some(_), None) => {
            // Another node with the key names the ports; this one gives their domains by DHCP.
            tracing::warn!(
                "dns.flashdns is set but this node has no service account key (iam.credentials_file; IAM writes it \
                 with bootstrap.services = [\"prismnet\"]): this node does not register ports' names"
            );
            None
        }
        (None, _) => {
            tracing::info!("dns.flashdns unset: ports get no names");
            None
        }
    };

    let dataplane = if config.dataplane.enabled {
        let section = &config.dataplane;
        let vtep = section.vtep_address.unwrap_or_else(nodes::default_vtep);
        tracing::info!(%node, %vtep, underlay_mtu = section.underlay_mtu, netns_prefix = %section.netns_prefix, "dataplane on");
        let settings = Settings {
            node: node.clone(),
            vtep,
            underlay_mtu: section.underlay_mtu,
            netns_prefix: section.netns_prefix.clone(),
            external: config.external.interface.clone(),
            naming,
            dns_servers: config.dns.servers.clone(),
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
    let (feed, fed, named) = (resources_copy.clone(), dataplane.clone(), registrar.clone());
    context.tasks.spawn(photon_resource::follow(store.clone(), layout.prefix(), context.shutdown.clone(), move |changes| {
        let mut copy = lock(&feed);
        copy.apply(changes);
        if let Some(dataplane) = &fed {
            dataplane.apply_resources(copy.items());
        }
        if let Some(registrar) = &named {
            registrar.apply_resources(copy.items());
        }
    }));

    let auth = Arc::new(AuthClient::new(auth).map_err(anyhow::Error::msg)?);
    let pools = Pools { floating: config.external.floating_cidr, service: config.ipam.service_cidr };
    let resources = ipam::assigners(Resources::new(store.clone(), layout.clone()), pools);
    let (router, rules, grpc) = crate::api::router(resources, auth.clone());
    let guard = photon_auth::Guard::new(auth, rules);
    let metrics = dataplane.as_ref().map(|d| d.metrics.clone());
    let mut api = Api::new(move || health(&store, &resources_copy, dataplane.as_deref(), registrar.as_deref())).grpc(grpc).http(router).guard(move |router| guard.apply(router));
    if let Some(metrics) = metrics {
        metrics.register(api.registry());
    }
    Ok(api)
}

/// The registrar of ports' names: FlashDNS called as PrismNET's service account, run while
/// this node holds the registrar's claim.
#[allow(clippy::too_many_arguments)]
fn registrar(
    config: &PrismnetConfig,
    context: &Context,
    store: &Store,
    naming: Naming,
    key: AccountKey,
    layout: &photon_resource::Layout,
    ca: Option<std::path::PathBuf>,
    node: String,
) -> anyhow::Result<Arc<Registrar>> {
    let url = config.dns.flashdns.clone().unwrap_or_default();
    let options = photon_client::ChannelOptions { ca, ..Default::default() };
    let iam = photon_client::lazy_channel(&config.iam.url, &options)?;
    let token = Arc::new(ServiceToken::login(iam, key.key_id, key.secret));
    let flashdns = FlashDns::new(photon_client::lazy_channel(&url, &options)?, token);
    let registrar = Registrar::new(naming, layout.clone(), config.dns.ttl, flashdns);
    tracing::info!(%url, domain = %config.dns.domain, "ports are named in FlashDNS by whichever node holds the registrar's claim");
    let held = registrar.clone();
    let claim = photon_resource::claim::hold(
        store.clone(),
        dns::registrar::CLAIM.to_string(),
        node,
        Duration::from_secs(10),
        context.shutdown.clone(),
        move |taken| held.set_held(taken),
    );
    context.tasks.spawn(claim);
    let resync = Duration::from_millis(config.dns.resync_ms.max(100));
    context.tasks.spawn(photon_reconcile::run(registrar.clone(), registrar.queue(), resync, context.shutdown.clone()));
    Ok(registrar)
}

/// Healthy while the copy of the resources is current and every VPC of this node converged;
/// degraded while chainfire cannot be reached, before the first copy, or while a VPC fails to
/// converge (the dataplane keeps what it built). `dns` says how names fare, without changing
/// the status: FlashDNS is optional, and a VPC works without names.
fn health(store: &Store, copy: &Mutex<Mirror>, dataplane: Option<&Dataplane>, registrar: Option<&Registrar>) -> HealthReport {
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
        .with("dns", dns_state(registrar))
}

fn dns_state(registrar: Option<&Registrar>) -> String {
    let Some(registrar) = registrar else { return "off (this node registers no names)".into() };
    let census = registrar.census();
    match census {
        _ if !census.held => "standby (another node names ports)".into(),
        _ if census.failing > 0 => format!("failing to register: {} of {} zones", census.failing, census.zones),
        _ => format!("zones registered: {}", census.zones),
    }
}
