//! Assembly: the zones' mirror fed from chainfire, DNS on UDP and TCP, DNS over TLS on the API
//! port (ALPN `dot`, or no ALPN at all), and the management API beside it; zone transfers to
//! secondaries and the task that notifies them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use photon_auth::AuthClient;
use photon_resource::Store;
use photon_runtime::{Api, Context, HealthReport, HealthStatus, StreamProtocol};
use tokio::net::TcpListener;

use crate::config::FlashdnsConfig;
use crate::dnssec::Keyring;
use photon_tls::seal::SealKey;
use crate::metrics::DnsMetrics;
use crate::mirror::Mirror;
use crate::store::{Zones, PREFIX};
use crate::transfer::tsig::KeyRing;
use crate::transfer::{notify, Transfers};
use crate::transport::rrl::RateLimiter;
use crate::transport::{stream, udp, Answerer};

/// A signed zone with secondaries whose record has not changed for this long steps its serial,
/// so secondaries fetch the signatures renewed meanwhile (renewal starts at 7 days left).
const RESIGN_SERIAL_AFTER_MS: u64 = 6 * 86_400_000;

pub async fn build(config: FlashdnsConfig, context: Context) -> anyhow::Result<Api> {
    let trust = context.tls.trust.clone();
    let store = Store::connect(&config.chainfire, trust.clone()).await?;
    let metrics = Arc::new(DnsMetrics::default());
    let exempt = config
        .dns
        .rrl_exempt
        .iter()
        .map(|net| net.parse().map_err(|e| anyhow::anyhow!("dns.rrl_exempt: {net:?} is not a CIDR: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let limiter = RateLimiter::new(config.dns.rrl_responses_per_sec, config.dns.rrl_slip, exempt);
    let keys = KeyRing::parse(&config.transfer.keys).map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(keys = keys.len(), journal_max = config.transfer.journal_max, "zone transfers: TSIG keys loaded");
    let transfers = Transfers::new(keys);
    let answerer = Answerer::new(metrics.clone(), limiter).with_transfers(transfers.clone());

    let master_key = config.dnssec.master_key_file.clone().unwrap_or_else(|| config.server.data_dir.join("dnssec-master.key"));
    let seal = SealKey::load_or_create(&master_key, "the FlashDNS DNSSEC master key")
        .map_err(|e| anyhow::anyhow!("dnssec.master_key_file: {e}"))?;
    let keyring = Arc::new(Keyring::new(seal));
    let mirror = Arc::new(Mutex::new(Mirror::new(keyring.clone())));
    let (feed, fed_answerer, shutdown) = (mirror.clone(), answerer.clone(), context.shutdown.clone());
    context.tasks.spawn(photon_resource::follow(store.clone(), PREFIX.to_string(), shutdown, move |changes| {
        match feed.lock() {
            Ok(mut mirror) => mirror.apply(changes, &fed_answerer),
            Err(poisoned) => poisoned.into_inner().apply(changes, &fed_answerer),
        }
    }));

    let listen = config.dns.listen;
    let workers = match config.dns.udp_workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        n => n,
    };
    let sockets = udp::bind(listen, workers)
        .map_err(|e| anyhow::anyhow!("cannot listen for DNS on UDP {listen} (dns.listen): {e}"))?;
    let tcp = TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for DNS on TCP {listen} (dns.listen): {e}"))?;
    udp::serve(sockets, answerer.clone(), context.shutdown.clone(), &context.tasks);
    stream::serve_tcp(tcp, answerer.clone(), context.shutdown.clone(), &context.tasks);
    tracing::info!(%listen, udp_workers = workers, "serving DNS over UDP and TCP");

    let dot_answerer = answerer.clone();
    let dot = StreamProtocol::new(b"dot", move |tls, peer, shutdown| {
        stream::serve_connection(tls, peer, dot_answerer.clone(), shutdown)
    })
    .also_without_alpn();

    let auth = config.iam.auth_config([config.chainfire.ca.as_deref(), trust.as_deref()]);
    let auth = Arc::new(AuthClient::new(auth).map_err(anyhow::Error::msg)?);
    let mut rules = crate::api::rules();
    rules.extend(crate::grpc::rules());
    let guard = photon_auth::Guard::new(auth, rules);

    let notifier = notify::spawn(transfers.clone(), context.shutdown.clone(), &context.tasks);
    let zones = Zones::new(store.clone())
        .with_journal_max(config.transfer.journal_max)
        .on_change(move |zone, serial| notifier.changed(zone, serial));
    // Signatures of unchanged zones age: every hour, re-sign what is due (`dnssec::sign`).
    let (resigned, resign_answerer, shutdown) = (mirror.clone(), answerer.clone(), context.shutdown.clone());
    let resign_zones = zones.clone();
    context.tasks.spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        every.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {
                    let stale = match resigned.lock() {
                        Ok(mut mirror) => {
                            mirror.resign(&resign_answerer);
                            mirror.signed_unchanged_since(RESIGN_SERIAL_AFTER_MS)
                        }
                        Err(poisoned) => {
                            let mut mirror = poisoned.into_inner();
                            mirror.resign(&resign_answerer);
                            mirror.signed_unchanged_since(RESIGN_SERIAL_AFTER_MS)
                        }
                    };
                    // Secondaries fetch renewed signatures only when the serial steps; every
                    // node tries, the zone's version lets one succeed.
                    for (owner, zone) in stale {
                        if let Err(e) = resign_zones.update_zone(&owner, &zone, |_| Ok(())).await {
                            tracing::debug!(%zone, error = %e, "serial step for renewed signatures not made here");
                        }
                    }
                }
            }
        }
    });
    let health_mirror = mirror.clone();
    let health_store = store.clone();
    let mut api = Api::new(move || health(&health_store, &health_mirror))
        .grpc(crate::grpc::Grpc::server(zones.clone()))
        .http(crate::api::router(zones, keyring))
        .stream(dot)
        .guard(move |router| guard.apply(router));
    metrics.register(api.registry());
    transfers.metrics().register(api.registry());
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
