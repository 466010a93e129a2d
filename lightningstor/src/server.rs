//! Assembling the server: flaredb (metadata) and IAM (keys and decisions) clients, the chunk
//! store and its replication to peers (the replication port and the repair loop), the S3 port,
//! and the management API port with `/health` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use photon_api::lightningstor::v1::replication_client::ReplicationClient;
use photon_auth::service::ServiceToken;
use photon_auth::sigv4::AccessKeys;
use photon_auth::{AuthClient, AuthConfig};
use photon_runtime::{Api, Context, HealthReport, HealthStatus};

use crate::chunks::ChunkStore;
use crate::config::{LightningstorConfig, ReplicationSection};
use crate::replication::server::PeerTls;
use crate::replication::trash::Trash;
use crate::replication::{Peer, Replicas};
use crate::s3::service::{handle, S3};
use crate::volumes::replicas::ExtentReplicas;
use photon_api::resource::v1::resources_server::ResourcesServer;

pub async fn build(config: LightningstorConfig, context: Context) -> anyhow::Result<Api> {
    let trust = context.tls.trust.clone();
    let records = config.flaredb.connect(trust.clone()).await.map_err(anyhow::Error::msg)?;

    let iam_ca = config.iam.ca.clone().or(trust);
    let key = config.iam.account().map_err(anyhow::Error::msg)?.ok_or_else(|| {
        anyhow::anyhow!(
            "iam.credentials_file is not set: LightningStor needs its service account's credentials (IAM writes them \
             with bootstrap.services = [\"lightningstor\"])"
        )
    })?;
    let options = photon_client::ChannelOptions { ca: iam_ca.clone(), ..Default::default() };
    let channel = photon_client::lazy_channel(&config.iam.url, &options)?;
    let identity = Arc::new(ServiceToken::login(channel.clone(), key.key_id, key.secret));
    let ttl = Duration::from_millis(config.iam.cache_ttl_ms);
    let keys = AccessKeys::new(channel, identity.clone(), ttl);
    let mut auth = AuthConfig::new(config.iam.url.clone());
    auth.ca = iam_ca;
    auth.decision_ttl = ttl;
    let auth = Arc::new(AuthClient::new(auth).map_err(anyhow::Error::msg)?);

    let data = config.server.data_dir.join("chunks");
    let local = ChunkStore::open(&data, config.storage.chunk_bytes)?;
    let delay = Duration::from_millis(config.storage.delete_delay_ms);
    let trash = Trash::open(&config.server.data_dir.join("trash.log"), delay)?;
    let chunks = Arc::new(replicas(&config.replication, local, records.clone(), trash, &context)?);
    let (trash_runner, shutdown) = (chunks.clone(), context.shutdown.clone());
    context.tasks.spawn(async move { trash_runner.run_trash(shutdown).await });
    let (sweeper, shutdown, sweep_records) = (chunks.clone(), context.shutdown.clone(), records.clone());
    let every = Duration::from_millis(config.storage.sweep_interval_ms);
    let grace = Duration::from_millis(config.storage.orphan_grace_ms);
    context.tasks.spawn(async move { sweeper.run_sweeps(sweep_records, every, grace, shutdown).await });
    let (scrubber, shutdown, scrub_records) = (chunks.clone(), context.shutdown.clone(), records.clone());
    let (every, rate) = (Duration::from_millis(config.storage.scrub_interval_ms), config.storage.scrub_bytes_per_sec);
    context.tasks.spawn(async move { scrubber.run_scrubs(scrub_records, every, rate, shutdown).await });
    // Volume extents: this node's, and its peers' over the same replication port.
    let extent_store = Arc::new(crate::volumes::extents::ExtentStore::open(&config.server.data_dir.join("extents"))?);
    let fences = Arc::new(crate::volumes::fences::Fences::open(config.server.data_dir.join("fences.json")));
    let extent_peers = chunks.peers.iter().map(|p| (p.id.clone(), p.client.clone())).collect();
    let timeout = Duration::from_millis(config.replication.timeout_ms);
    let extents = Arc::new(ExtentReplicas::new(extent_store, fences, chunks.node.clone(), extent_peers, timeout));
    if !chunks.peers.is_empty() {
        let tls = match (&context.tls.identity, &context.tls.trust) {
            (Some((cert, key)), Some(ca)) => Some(PeerTls { cert: cert.clone(), key: key.clone(), ca: ca.clone() }),
            _ => None,
        };
        let max_message = config.storage.chunk_bytes + (1 << 20);
        let serving = crate::replication::server::serve(
            config.replication.listen,
            chunks.clone(),
            extents.clone(),
            tls,
            max_message,
            context.shutdown.clone(),
        );
        context.tasks.spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(error = %e, "the replication port failed");
            }
        });
        let (repairer, interval) = (chunks.clone(), Duration::from_millis(config.replication.repair_interval_ms));
        let shutdown = context.shutdown.clone();
        context.tasks.spawn(async move { repairer.run_repairs(interval, shutdown).await });
    }
    let metrics = chunks.metrics.clone();
    let admin = crate::admin::Admin::new(records.clone());
    let (volumes, volume_routes, volume_rules, volume_grpc, volume_count) =
        volumes(&config, &context, records.clone(), extents, chunks.clone(), auth.clone()).await?;
    let mut rules = crate::admin::rules();
    rules.extend(volume_rules);
    let guard = photon_auth::Guard::new(auth.clone(), rules);
    let s3 = Arc::new(S3 {
        records,
        chunks,
        keys,
        auth,
        identity,
        config: config.s3.clone(),
        inline_bytes: config.storage.inline_bytes,
        read_cache: Default::default(),
        digests: crate::s3::digest::Digester::start()
            .map_err(|e| anyhow::anyhow!("cannot start the upload digest thread: {e}"))?,
    });
    let router = axum::Router::new().fallback(handle).with_state(s3);
    let listener = tokio::net::TcpListener::bind(config.s3.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on the S3 port {} (s3.listen): {e}", config.s3.listen))?;
    let tls = if config.s3.plaintext { None } else { context.tls.config.clone() };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(endpoint = %format!("{scheme}://{}", config.s3.listen), "serving S3");
    let drain = Duration::from_secs(config.server.shutdown_timeout_secs);
    context.tasks.spawn(photon_runtime::serve_port(listener, tls, router, context.shutdown.clone(), drain));

    let pending = metrics.pending.clone();
    let store = volumes.store.clone();
    let mut api = Api::new(move || health(&data, &store, &volume_count).with("repairs_pending", pending.get()))
        .grpc(admin.clone().grpc())
        .grpc(volume_grpc)
        .http(admin.router().merge(volume_routes))
        .guard(move |router| guard.apply(router));
    let registry = api.registry();
    volumes.metrics.register(registry);
    registry.register(
        "lightningstor_replica_write_failures",
        "Replica writes that failed and became repair hints",
        metrics.write_failures,
    );
    registry.register("lightningstor_chunk_repairs", "Chunks rewritten on this node from a replica", metrics.repairs);
    registry.register("lightningstor_repairs_pending", "Repair hints this node still owes", metrics.pending);
    registry.register("lightningstor_trash_chunks", "Chunks dropped and waiting to be deleted", metrics.trash_chunks);
    registry.register("lightningstor_trash_bytes", "Bytes of chunks waiting to be deleted", metrics.trash_bytes);
    registry.register(
        "lightningstor_orphans_removed",
        "Chunk files the orphan sweep deleted (no record named them)",
        metrics.orphans_removed,
    );
    registry.register(
        "lightningstor_scrub_bad_copies",
        "Chunk copies the scrub found corrupt or missing on this node",
        metrics.scrub_bad,
    );
    Ok(api)
}

/// The replicated chunk store: this node and the peers `[replication]` names.
fn replicas(
    config: &ReplicationSection,
    local: ChunkStore,
    hints: flaredb_client::records::Records,
    trash: Trash,
    context: &Context,
) -> anyhow::Result<Replicas> {
    let node = if config.node_id.is_empty() { photon_runtime::host_name() } else { config.node_id.clone() };
    anyhow::ensure!(!node.is_empty(), "replication.node_id is empty and the host name is unknown");
    let options = photon_client::ChannelOptions {
        ca: context.tls.trust.clone(),
        client_cert: context.tls.identity.clone(),
        connect_timeout: Some(Duration::from_secs(2)),
    };
    let mut peers = Vec::new();
    for (id, url) in config.peer_list().map_err(anyhow::Error::msg)? {
        anyhow::ensure!(id != node, "replication.peers names this node ({node}) itself");
        let channel = photon_client::lazy_channel(&url, &options)?;
        let client =
            ReplicationClient::new(channel).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX);
        peers.push(Peer { id, client });
    }
    let timeout = Duration::from_millis(config.timeout_ms);
    let replicas = Replicas::new(local, node, peers, config.copies, timeout, hints, trash);
    tracing::info!(
        node = %replicas.node,
        peers = replicas.peers.len(),
        quorum = replicas.quorum(),
        "chunk placement"
    );
    Ok(replicas)
}

/// The block volumes' part: their resources in chainfire (a copy followed for `/health`), the
/// engines of this node, and their API routes.
async fn volumes(
    config: &LightningstorConfig,
    context: &Context,
    records: flaredb_client::records::Records,
    extents: Arc<ExtentReplicas>,
    chunks: Arc<Replicas>,
    auth: Arc<AuthClient>,
) -> anyhow::Result<(Served, axum::Router, Vec<photon_auth::Rule>, ResourcesServer<photon_resource::grpc::Grpc>, VolumeCount)>
{
    use crate::volumes::exports::{Catalog, VolumeExports};
    use crate::volumes::model::{layout, Attachment, Snapshot, Volume};
    use photon_resource::Kind;
    let store = photon_resource::Store::connect(&config.chainfire, context.tls.trust.clone()).await?;
    let images = Arc::new(crate::volumes::images::Images { records: records.clone(), chunks });
    let engines = crate::volumes::service::Volumes::new(Arc::new(records), extents, Some(images.clone()));
    context.tasks.spawn(engines.clone().run_repairs(Duration::from_millis(config.replication.repair_interval_ms), context.shutdown.clone()));
    // Volumes no node writes are looked at less often: each pass lists every volume.
    let idle = Duration::from_millis(config.replication.repair_interval_ms.saturating_mul(5));
    let node = if config.replication.node_id.is_empty() { photon_runtime::host_name() } else { config.replication.node_id.clone() };
    context.tasks.spawn(crate::volumes::idle_repair::run(engines.clone(), store.clone(), node.clone(), idle, context.shutdown.clone()));
    let resources = photon_resource::Resources::new(store.clone(), layout())
        .with_assigner::<Volume>(engines.clone())
        .with_assigner::<Snapshot>(engines.clone())
        .with_assigner::<Attachment>(engines.clone());
    let (router, rules, grpc) = crate::volumes::api::router(resources, auth);
    let count = VolumeCount::default();
    let catalog = Arc::new(Catalog::default());
    let (counted, indexed, layout) = (count.clone(), catalog.clone(), layout());
    let copy = Arc::new(std::sync::Mutex::new(photon_resource::Mirror::default()));
    let (deleted, forgetting) = tokio::sync::mpsc::unbounded_channel();
    context.tasks.spawn(engines.clone().run_forgetting(store.clone(), forgetting, context.shutdown.clone()));
    let (importing, imports) = tokio::sync::mpsc::unbounded_channel();
    context.tasks.spawn(engines.clone().run_imports(store.clone(), images, imports, context.shutdown.clone()));
    let mut sent: std::collections::BTreeSet<String> = Default::default();
    let growing = engines.clone();
    let mut known: std::collections::BTreeSet<String> = Default::default();
    context.tasks.spawn(photon_resource::follow(store.clone(), layout.prefix(), context.shutdown.clone(), move |changes| {
        let mut copy = copy.lock().unwrap_or_else(|p| p.into_inner());
        copy.apply(changes);
        let uids: std::collections::BTreeSet<String> = copy
            .items()
            .iter()
            .filter(|(k, _)| layout.parse(k).is_some_and(|(_, path, _)| path == Volume::PATH))
            .filter_map(|(_, v)| serde_json::from_slice::<serde_json::Value>(v).ok())
            .filter_map(|v| v["metadata"]["uid"].as_str().map(str::to_string))
            .collect();
        // A volume from an image is imported by one node (each node offers it once).
        for (key, value) in copy.items() {
            let Some((owner, path, _)) = layout.parse(key) else { continue };
            if path != Volume::PATH {
                continue;
            }
            let Ok(volume) = serde_json::from_slice::<photon_resource::Resource<crate::volumes::model::VolumeSpec>>(value) else { continue };
            growing.resized(&volume.metadata.uid, volume.spec.size_bytes);
            if matches!(volume.spec.source, Some(crate::volumes::model::Source::Image { .. })) && sent.insert(volume.metadata.uid.clone()) {
                let _ = importing.send((owner, volume.metadata.uid, volume.spec));
            }
        }
        // A volume gone since the last copy was deleted: its data goes too.
        for uid in known.difference(&uids) {
            let _ = deleted.send(uid.clone());
        }
        counted.store(if copy.revision > 0 { uids.len() as i64 } else { -1 }, std::sync::atomic::Ordering::SeqCst);
        known = uids;
        indexed.rebuild(&layout, copy.items());
    }));

    let listener = tokio::net::TcpListener::bind(config.volumes.nbd_listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on the NBD port {} (volumes.nbd_listen): {e}", config.volumes.nbd_listen)
    })?;
    // NBD's own STARTTLS, with the API port's certificate; no ALPN (QEMU offers none).
    let tls = context.tls.config.as_ref().filter(|_| !config.volumes.nbd_plaintext).map(|c| {
        let mut c = (**c).clone();
        c.alpn_protocols.clear();
        Arc::new(c)
    });
    tracing::info!(listen = %config.volumes.nbd_listen, tls = tls.is_some(), "serving volumes over NBD");
    let exports = Arc::new(VolumeExports::new(catalog, engines.clone(), store.clone(), node));
    let metrics = exports.metrics.clone();
    context.tasks.spawn(photon_block::nbd::serve(listener, exports.clone(), tls, context.shutdown.clone()));
    let iscsi = tokio::net::TcpListener::bind(config.volumes.iscsi_listen).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on the iSCSI port {} (volumes.iscsi_listen): {e}", config.volumes.iscsi_listen)
    })?;
    tracing::info!(listen = %config.volumes.iscsi_listen, "serving volumes over iSCSI");
    let targets = Arc::new(crate::volumes::iscsi::VolumeTargets(exports));
    context.tasks.spawn(photon_block::iscsi::serve(iscsi, targets, context.shutdown.clone()));
    Ok((Served { store, engines, metrics }, router, rules, grpc, count))
}

/// Volumes this node knows of (-1 before the first copy from chainfire).
type VolumeCount = Arc<std::sync::atomic::AtomicI64>;

pub struct Served {
    pub store: photon_resource::Store,
    pub engines: Arc<crate::volumes::service::Volumes>,
    pub metrics: crate::volumes::metrics::VolumeMetrics,
}

/// `/health`: `{"status","volumes","total_gb","chainfire"}`: healthy while the data directory
/// answers and chainfire (where volumes are kept) is reachable; degraded without chainfire
/// (S3 serves all the same).
fn health(data: &std::path::Path, store: &photon_resource::Store, volumes: &VolumeCount) -> HealthReport {
    let connected = store.connected();
    let count = volumes.load(std::sync::atomic::Ordering::SeqCst);
    let report = match disk_gb(data) {
        Some(_) if !connected || count < 0 => HealthReport::new(HealthStatus::Degraded),
        Some(_) => HealthReport::new(HealthStatus::Healthy),
        None => HealthReport::new(HealthStatus::Unhealthy),
    };
    report
        .with("volumes", count.max(0) as u64)
        .with("total_gb", disk_gb(data).unwrap_or(0.0))
        .with("chainfire", if connected { "connected" } else { "unreachable" })
}

/// The size of the filesystem holding `path`, in GB.
fn disk_gb(path: &std::path::Path) -> Option<f64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    let bytes = stat.f_blocks as f64 * stat.f_frsize as f64;
    Some((bytes / 1e9 * 10.0).round() / 10.0)
}
