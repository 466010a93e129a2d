//! Assembly: the resources followed from chainfire into the node's state and its dataplane
//! (listeners reconciled as the plan changes), and the management API beside `/health`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use photon_auth::AuthClient;
use photon_resource::{Mirror, Resources, Sealer, Store};
use photon_tls::seal::SealKey;
use photon_runtime::{Api, Context, HealthReport, HealthStatus};

use crate::config::FiberlbConfig;
use crate::dataplane::vip::{VipSettings, Vips};
use crate::dataplane::Dataplane;
use crate::model;

/// How often every listener is reconciled even without a change (repairs drift).
const RESYNC: Duration = Duration::from_secs(30);

pub async fn build(config: FiberlbConfig, context: Context) -> anyhow::Result<Api> {
    let trust = context.tls.trust.clone();
    let store = Store::connect(&config.chainfire, trust.clone()).await?;
    let layout = model::layout();
    let master_key = config.secrets.master_key_file.clone().unwrap_or_else(|| config.server.data_dir.join("fiberlb-master.key"));
    let keys = Arc::new(
        SealKey::load_or_create(&master_key, "the FiberLB master key").map_err(|e| anyhow::anyhow!("secrets.master_key_file: {e}"))?,
    );
    let state = Arc::new(Mutex::new(Mirror::default()));
    let dataplane = Dataplane::new(layout.clone(), keys.clone(), &config.dataplane)?;
    let (feed, fed) = (state.clone(), dataplane.clone());
    context.tasks.spawn(photon_resource::follow(store.clone(), layout.prefix(), context.shutdown.clone(), move |changes| {
        let mut state = match feed.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.apply(changes);
        fed.apply(state.items());
    }));
    context.tasks.spawn(photon_reconcile::run(dataplane.clone(), dataplane.queue(), RESYNC, context.shutdown.clone()));
    let gauges = (dataplane.clone(), context.shutdown.clone());
    context.tasks.spawn(async move {
        let (dataplane, shutdown) = gauges;
        let mut every = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => dataplane.refresh_gauges(),
            }
        }
    });
    if let Some(interface) = config.vip.interface.clone() {
        let settings = VipSettings {
            interface,
            prefix_len: config.vip.prefix_len,
            prefix_len_v6: config.vip.prefix_len_v6,
            node: config.vip.node.clone().unwrap_or_else(photon_runtime::host_name),
            ttl: Duration::from_secs(config.vip.ttl_secs.max(1)),
        };
        tracing::info!(interface = %settings.interface, node = %settings.node, ttl_secs = settings.ttl.as_secs(), "managing VIPs");
        let vips = Vips::new(dataplane.shared().clone(), store.clone(), settings);
        dataplane.watch_vips(vips.queue());
        context.tasks.spawn(photon_reconcile::run(vips.clone(), vips.queue(), RESYNC, context.shutdown.clone()));
    }
    let probes = dataplane.probes();
    context.tasks.spawn(photon_reconcile::run(probes.clone(), probes.queue(), RESYNC, context.shutdown.clone()));

    let auth = config.iam.auth_config([config.chainfire.ca.as_deref(), trust.as_deref()]);
    let auth = Arc::new(AuthClient::new(auth).map_err(anyhow::Error::msg)?);
    let resources = Resources::new(store.clone(), layout.clone()).with_sealer(Arc::new(MasterKey(keys)));
    let (router, rules, grpc) = crate::api::router(resources, dataplane.clone(), auth.clone());
    let guard = photon_auth::Guard::new(auth, rules);
    let metrics = dataplane.shared().metrics.clone();
    let mut api = Api::new(move || health(&store, &state, &dataplane)).grpc(grpc).http(router).guard(move |router| guard.apply(router));
    metrics.register(api.registry());
    Ok(api)
}

/// The master key as photon-resource's sealer of secrets.
struct MasterKey(Arc<SealKey>);

impl Sealer for MasterKey {
    fn seal(&self, plain: &[u8]) -> Result<String, String> {
        self.0.seal(plain)
    }
}

/// Healthy while the copy of the resources is current; degraded while chainfire cannot be
/// reached or before the first copy arrived (the dataplane keeps serving the last copy).
fn health(store: &Store, state: &Mutex<Mirror>, dataplane: &Dataplane) -> HealthReport {
    let loaded = match state.lock() {
        Ok(state) => state.revision > 0,
        Err(poisoned) => poisoned.into_inner().revision > 0,
    };
    let plan = dataplane.shared().plan();
    let (up, down) = dataplane.shared().stats.census(plan.backends().map(|(_, b)| b));
    let connected = store.connected();
    let status = if connected && loaded { HealthStatus::Healthy } else { HealthStatus::Degraded };
    HealthReport::new(status)
        .with("listeners", dataplane.listening() as u64)
        .with("backends_up", up)
        .with("backends_down", down)
        .with("chainfire", if connected { "connected" } else { "unreachable" })
}
