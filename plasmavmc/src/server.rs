//! Assembly: the API over the resources in chainfire; the scheduler, run while this node holds
//! its claim; with the agent on, this node's capacity registered and its VMs run; all fed by
//! one watch of PlasmaVMC's keys (and one of the membership table); `/health` beside them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use photon_auth::service::ServiceToken;
use photon_auth::AuthClient;
use photon_resource::remote::Remote;
use photon_resource::{Mirror, Resources, Store};
use photon_runtime::{Api, Context, HealthReport, HealthStatus};

use crate::agent::{self, images::ImageCache, Agent, Settings};
use crate::bucket::Bucket;
use crate::import::Importer;
use crate::parts::Fetcher;
use crate::api::VmChecks;
use crate::config::PlasmavmcConfig;
use crate::console::ConsoleService;
use crate::model::{self, Vm};
use crate::network::Network;
use crate::storage::Storage;
use crate::nodes::{self, NodeRecord};
use crate::scheduler::place::Policy;
use crate::scheduler::{self, Scheduler};

pub async fn build(config: PlasmavmcConfig, context: Context) -> anyhow::Result<Api> {
    let trust = context.tls.trust.clone();
    let store = Store::connect(&config.chainfire, trust.clone()).await?;
    let layout = model::layout();
    let node = config.agent.node.clone().unwrap_or_else(photon_runtime::host_name);
    let data_dir = config.server.data_dir.clone();

    let policy = Policy {
        strategy: config.scheduler.strategy,
        cpu_overcommit: config.scheduler.cpu_overcommit.max(0.1),
        memory_overcommit: config.scheduler.memory_overcommit.max(0.1),
    };
    // The platform CA, as IAM's client finds it (iam.ca, chainfire.ca, or what the node trusts).
    let ca = config.iam.auth_config([config.chainfire.ca.as_deref(), trust.as_deref()]).ca;
    let Accounts { network, storage, bucket } = accounts(&config, ca.clone())?;
    let fetcher = Fetcher::new(ca.as_deref())?;
    let importer = Importer::new(store.clone(), bucket.clone(), fetcher.clone(), data_dir.join("import"));
    let scheduler = Scheduler::new(store.clone(), layout.clone(), policy, network.clone(), storage.clone(), importer.clone());
    if config.scheduler.enabled {
        let held = scheduler.clone();
        let claim = photon_resource::claim::hold(
            store.clone(),
            scheduler::CLAIM.to_string(),
            node.clone(),
            Duration::from_secs(10),
            context.shutdown.clone(),
            move |taken| held.set_held(taken),
        );
        context.tasks.spawn(claim);
        context.tasks.spawn(photon_reconcile::run(
            scheduler.clone(),
            scheduler.queue(),
            Duration::from_secs(5),
            context.shutdown.clone(),
        ));
    } else {
        tracing::info!("scheduler.enabled = false: this node never places VMs");
    }

    let mut local = None;
    let agent = if config.agent.enabled {
        let section = &config.agent;
        let run_dir = section.run_dir.clone().unwrap_or_else(|| data_dir.join("vms"));
        let cache = section.image_cache.clone().unwrap_or_else(|| data_dir.join("images"));
        std::fs::create_dir_all(&run_dir).map_err(|e| anyhow::anyhow!("agent.run_dir {}: {e}", run_dir.display()))?;
        let accel = agent::accel::detect(&section.accel, &section.qemu, &run_dir).await;
        let api_url = section.advertise_url.clone().unwrap_or_else(|| advertised(&config));
        let record = NodeRecord {
            vcpus: section
                .vcpus
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)),
            memory_mib: section
                .memory_mib
                .unwrap_or_else(|| host_memory_mib().saturating_sub(section.reserved_memory_mib)),
            architecture: std::env::consts::ARCH.to_string(),
            labels: section.labels.clone(),
            accel: accel.1.clone(),
            api: Some(api_url.clone()),
        };
        tracing::info!(%node, vcpus = record.vcpus, memory_mib = record.memory_mib, accel = %accel.1, run_dir = %run_dir.display(), "agent on: this node runs VMs");
        context.tasks.spawn(nodes::register(store.clone(), node.clone(), record, context.shutdown.clone()));
        std::fs::create_dir_all(&cache).map_err(|e| anyhow::anyhow!("agent.image_cache {}: {e}", cache.display()))?;
        let users = agent::users::Users::new(section.qemu_uid_base, &run_dir, &cache);
        tracing::info!(qemu = %users.describe(), "whom VMs' QEMUs run as");
        let images = ImageCache::new(cache, fetcher, bucket, users.group())?;
        let settings = Settings {
            node: node.clone(),
            run_dir,
            qemu: section.qemu.clone(),
            qemu_img: section.qemu_img.clone(),
            accel,
            stop_timeout: Duration::from_millis(section.stop_timeout_ms),
            ca: ca.clone(),
            identity: context.tls.identity.clone(),
            migration_host: migration_host(&api_url),
            cgroups: agent::cgroups::Cgroups::detect(),
            memory_overhead_mib: section.memory_overhead_mib,
            users,
            unsandboxed: agent::qemu::sandbox_support(&section.qemu).err().map(|why| {
                tracing::warn!(qemu = %section.qemu, %why, "this QEMU has no seccomp sandbox (built without libseccomp): VMs run without -sandbox");
                format!("{} has no seccomp sandbox ({why})", section.qemu)
            }),
        };
        settings.cgroups.tidy();
        tracing::info!(limits = %settings.cgroups.describe(), "VMs' CPU and memory limits");
        local = Some((node.clone(), settings.run_dir.clone()));
        let agent = Agent::new(settings, store.clone(), layout.clone(), images, network.clone(), storage.clone());
        let resync = Duration::from_millis(section.resync_ms.max(100));
        context.tasks.spawn(photon_reconcile::run(agent.clone(), agent.queue(), resync, context.shutdown.clone()));
        Some(agent)
    } else {
        tracing::info!("agent.enabled = false: this node serves the API only");
        None
    };

    let copy = Arc::new(Mutex::new(Mirror::default()));
    let (fed, feed_scheduler, feed_agent) = (copy.clone(), scheduler.clone(), agent.clone());
    context.tasks.spawn(photon_resource::follow(
        store.clone(),
        format!("{}/", model::ROOT),
        context.shutdown.clone(),
        move |changes| {
            fed.lock().unwrap_or_else(|p| p.into_inner()).apply(changes.clone());
            if let Some(agent) = &feed_agent {
                agent.apply(changes.clone());
            }
            feed_scheduler.apply(changes);
        },
    ));
    let members = scheduler.clone();
    context.tasks.spawn(photon_resource::follow(
        store.clone(),
        nodes::MEMBERS.to_string(),
        context.shutdown.clone(),
        move |changes| members.apply_members(changes),
    ));

    let auth = config.iam.auth_config([config.chainfire.ca.as_deref(), trust.as_deref()]);
    let auth = Arc::new(AuthClient::new(auth).map_err(anyhow::Error::msg)?);
    let checks = Arc::new(VmChecks {
        cpu_overcommit: policy.cpu_overcommit,
        memory_overcommit: policy.memory_overcommit,
        network,
        storage,
    });
    let resources = Resources::new(store.clone(), layout.clone()).with_assigner::<Vm>(checks);
    let (router, mut rules, grpc) = crate::api::router(resources, auth.clone(), importer.clone());
    let console = Arc::new(ConsoleService {
        store: store.clone(),
        layout: layout.clone(),
        auth: auth.clone(),
        local,
        trust: trust.clone(),
    });
    rules.push(photon_auth::Rule::by_handler(Some(axum::http::Method::POST), crate::console::METHODS));
    let websocket = format!("{}/{{name}}/console", photon_resource::rest::collection_path(<Vm as photon_resource::Kind>::PATH));
    rules.push(photon_auth::Rule::new(
        Some(axum::http::Method::GET),
        &websocket,
        "plasmavmc:vms:console",
        "orgs/{org}/projects/{project}/vms/{name}",
    ));
    let router = router.merge(
        axum::Router::new()
            .route(&websocket, axum::routing::get(crate::console::websocket::console))
            .with_state(console.clone()),
    );
    let guard = photon_auth::Guard::new(auth, rules);
    let report = move || health(&store, &copy, &scheduler, agent.as_deref());
    Ok(Api::new(report).grpc(grpc).grpc(console.server()).http(router).guard(move |router| guard.apply(router)))
}

/// What PlasmaVMC reaches as its own account (none without the account's key).
struct Accounts {
    network: Option<Network>,
    storage: Option<Storage>,
    /// The platform bucket, when images are imported.
    bucket: Option<Arc<Bucket>>,
}

/// PrismNET, LightningStor and the platform bucket as PlasmaVMC's account, when this node has
/// the account's key.
fn accounts(config: &PlasmavmcConfig, ca: Option<std::path::PathBuf>) -> anyhow::Result<Accounts> {
    let Some(key) = config.iam.account().map_err(anyhow::Error::msg)? else {
        tracing::warn!("no service account (iam.credentials_file; IAM writes it with bootstrap.services = [\"plasmavmc\"]): VMs with NICs or volumes are refused, and images are fetched from their URLs by every node");
        return Ok(Accounts { network: None, storage: None, bucket: None });
    };
    let bucket = if config.images.import {
        let account = (key.key_id.clone(), key.secret.clone());
        let bucket = Bucket::new(&config.lightningstor.s3, ca.as_deref(), account, &config.images.bucket)?;
        tracing::info!(s3 = %config.lightningstor.s3, bucket = %config.images.bucket, "images are imported into the platform bucket");
        Some(Arc::new(bucket))
    } else {
        tracing::info!("images.import = false: every node fetches images from their URLs");
        None
    };
    let options = photon_client::ChannelOptions { ca, ..Default::default() };
    let iam = photon_client::lazy_channel(&config.iam.url, &options)?;
    let token = Arc::new(ServiceToken::login(iam, key.key_id, key.secret));
    let prismnet = photon_client::lazy_channel(&config.prismnet.url, &options)?;
    let lightningstor = photon_client::lazy_channel(&config.lightningstor.url, &options)?;
    let storage = Storage::new(Remote::new("lightningstor", lightningstor, token.clone()), &config.lightningstor.nbd)
        .map_err(anyhow::Error::msg)?;
    tracing::info!(prismnet = %config.prismnet.url, lightningstor = %config.lightningstor.url, nbd = %config.lightningstor.nbd, "NICs are PrismNET ports and disks LightningStor volumes, both as PlasmaVMC's account");
    Ok(Accounts { network: Some(Network::new(Remote::new("prismnet", prismnet, token))), storage: Some(storage), bucket })
}

/// This node's API URL as other nodes reach it: the listen address, or the host name when that
/// is unspecified (0.0.0.0).
fn advertised(config: &PlasmavmcConfig) -> String {
    let scheme = if config.tls.insecure { "http" } else { "https" };
    let listen = &config.server.listen;
    let host = if listen.ip().is_unspecified() { photon_runtime::host_name() } else { listen.ip().to_string() };
    format!("{scheme}://{host}:{}", listen.port())
}

/// The host of this node's API URL, where other nodes send live migrations.
fn migration_host(api_url: &str) -> String {
    let rest = api_url.split_once("://").map_or(api_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host.trim_matches(['[', ']']).to_string(),
        _ => authority.to_string(),
    }
}

/// The node's memory (`MemTotal`), in MiB.
fn host_memory_mib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .unwrap_or(0)
}

/// Healthy while chainfire answers and the copy of PlasmaVMC's keys is current; `nodes` are the
/// registered hypervisors (and how many can take VMs), `vms` every VM by state.
fn health(store: &Store, copy: &Mutex<Mirror>, scheduler: &Scheduler, agent: Option<&Agent>) -> HealthReport {
    let (loaded, by_state) = {
        let copy = copy.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
        for (_, vm) in model::followed_vms(&copy) {
            *by_state.entry(model::VmStatus::of(&vm).state.as_str().to_string()).or_default() += 1;
        }
        (copy.revision > 0, by_state)
    };
    let nodes = scheduler.nodes();
    let schedulable = nodes.values().filter(|n| n.schedulable()).count();
    let connected = store.connected();
    let status = if connected && loaded { HealthStatus::Healthy } else { HealthStatus::Degraded };
    let mut report = HealthReport::new(status)
        .with("nodes", serde_json::json!({ "registered": nodes.len(), "schedulable": schedulable }))
        .with("vms", serde_json::to_value(&by_state).unwrap_or_default())
        .with("chainfire", if connected { "connected" } else { "unreachable" })
        .with("scheduler", if scheduler.held() { "this node" } else { "standby" });
    report = match agent {
        Some(agent) => {
            let census = agent.census();
            report.with(
                "agent",
                serde_json::json!({
                    "placed": census.placed,
                    "running": census.running,
                    "accel": agent.accel(),
                    "limits": agent.limits(),
                    "qemu_user": agent.qemu_user(),
                    "sandbox": agent.sandbox(),
                }),
            )
        }
        None => report.with("agent", "off"),
    };
    report
}
