//! Assembly: the zones' mirror fed from chainfire, DNS on UDP and TCP, DNS over TLS on the API
//! port (ALPN `dot`, or no ALPN at all), and the management API beside it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use photon_auth::{AuthClient, AuthConfig};
use photon_resource::Store;
use photon_runtime::{Api, Context, HealthReport, HealthStatus, StreamProtocol};
use tokio::net::{TcpListener, UdpSocket};

use crate::config::FlashdnsConfig;
use crate::metrics::DnsMetrics;
use crate::mirror::Mirror;
use crate::store::{Zones, PREFIX};
use crate::transport::{stream, udp, Answerer};

pub async fn build(config: FlashdnsConfig, context: Context) -> anyhow::Result<Api> {
    let trust = context.tls.trust.clone();
    let store = Store::connect(&config.chainfire, trust.clone()).await?;
    let metrics = Arc::new(DnsMetrics::default());
    let answerer = Answerer::new(metrics.clone());

    let mirror = Arc::new(Mutex::new(Mirror::default()));
    let (feed, fed_answerer, shutdown) = (mirror.clone(), answerer.clone(), context.shutdown.clone());
    context.tasks.spawn(photon_resource::follow(store.clone(), PREFIX.to_string(), shutdown, move |changes| {
        match feed.lock() {
            Ok(mut mirror) => mirror.apply(changes, &fed_answerer),
            Err(poisoned) => poisoned.into_inner().apply(changes, &fed_answerer),
        }
    }));

    let listen = config.dns.listen;
    let socket = UdpSocket::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for DNS on UDP {listen} (dns.listen): {e}"))?;
    let tcp = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for DNS on TCP {listen} (dns.listen): {e}"))?;
    let workers = match config.dns.udp_workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        n => n,
    };
    udp::serve(socket, workers, answerer.clone(), context.shutdown.clone(), &context.tasks);
    stream::serve_tcp(tcp, answerer.clone(), context.shutdown.clone(), &context.tasks);
    tracing::info!(%listen, udp_workers = workers, "serving DNS over UDP and TCP");

    let dot_answerer = answerer.clone();
    let dot = StreamProtocol::new(b"dot", move |tls, peer, shutdown| {
        stream::serve_connection(tls, peer, dot_answerer.clone(), shutdown)
    })
    .also_without_alpn();

    let mut auth = AuthConfig::new(config.iam.url.clone());
    auth.ca = config.iam.ca.clone().or(trust);
    auth.decision_ttl = Duration::from_millis(config.iam.cache_ttl_ms);
    let auth = Arc::new(AuthClient::new(auth).map_err(anyhow::Error::msg)?);
    let guard = photon_auth::Guard::new(auth, crate::api::rules());

    let zones = Zones::new(store.clone());
    let health_mirror = mirror.clone();
    let health_store = store.clone();
    let mut api = Api::new(move || health(&health_store, &health_mirror))
        .http(crate::api::router(zones))
        .stream(dot)
        .guard(move |router| guard.apply(router));
    metrics.register(api.registry());
    Ok(api)
}

/// Healthy while the copy of the zones is current; degraded (still answering from the last
/// copy) while chainfire cannot be reached or before the first copy arrived.
fn health(store: &Store, mirror: &Mutex<Mirror>) -> HealthReport {
    let (loaded, zones) = match mirror.lock() {
        Ok(m) => (m.revision > 0, m.zone_count()),
        Err(poisoned) => {
            let m = poisoned.into_inner();
            (m.revision > 0, m.zone_count())
        }
    };
    let connected = store.connected();
    let status = if connected && loaded { HealthStatus::Healthy } else { HealthStatus::Degraded };
    HealthReport::new(status)
        .with("zones", zones as u64)
        .with("chainfire", if connected { "connected" } else { "unreachable" })
        .with("loaded", loaded)
}
