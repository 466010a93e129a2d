//! Assembly: the resources followed from chainfire and the management API beside `/health`.

use std::sync::{Arc, Mutex};

use photon_auth::AuthClient;
use photon_resource::{Kind, Layout, Resources, Store};
use photon_runtime::{Api, Context, HealthReport, HealthStatus};

use crate::config::FiberlbConfig;
use crate::model::{self, Backend, Listener};
use crate::state::State;

pub async fn build(config: FiberlbConfig, context: Context) -> anyhow::Result<Api> {
    let trust = context.tls.trust.clone();
    let store = Store::connect(&config.chainfire, trust.clone()).await?;
    let layout = model::layout();
    let state = Arc::new(Mutex::new(State::default()));
    let feed = state.clone();
    context.tasks.spawn(photon_resource::follow(store.clone(), layout.prefix(), context.shutdown.clone(), move |changes| {
        match feed.lock() {
            Ok(mut state) => state.apply(changes),
            Err(poisoned) => poisoned.into_inner().apply(changes),
        }
    }));

    let auth = config.iam.auth_config([config.chainfire.ca.as_deref(), trust.as_deref()]);
    let auth = Arc::new(AuthClient::new(auth).map_err(anyhow::Error::msg)?);
    let (router, rules) = crate::api::router(Resources::new(store.clone(), layout.clone()));
    let guard = photon_auth::Guard::new(auth, rules);
    let api = Api::new(move || health(&store, &state, &layout)).http(router).guard(move |router| guard.apply(router));
    Ok(api)
}

/// Healthy while the copy of the resources is current; degraded while chainfire cannot be
/// reached or before the first copy arrived.
fn health(store: &Store, state: &Mutex<State>, layout: &Layout) -> HealthReport {
    let (loaded, listeners, backends) = {
        let state = match state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        (state.revision > 0, state.count(layout, Listener::PATH), state.count(layout, Backend::PATH))
    };
    let connected = store.connected();
    let status = if connected && loaded { HealthStatus::Healthy } else { HealthStatus::Degraded };
    // Until health checks run, no backend is known up or down: they are counted as configured.
    HealthReport::new(status)
        .with("listeners", listeners as u64)
        .with("backends_up", 0u64)
        .with("backends_down", 0u64)
        .with("backends_configured", backends as u64)
        .with("chainfire", if connected { "connected" } else { "unreachable" })
}
