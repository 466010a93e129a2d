//! Assembling the server: flaredb (metadata) and IAM (keys and decisions) clients, the chunk
//! store, the S3 port, and the management API port with `/health`.

use std::sync::Arc;
use std::time::Duration;

use photon_auth::service::ServiceToken;
use photon_auth::sigv4::AccessKeys;
use photon_auth::{AuthClient, AuthConfig};
use photon_runtime::{Api, Context, HealthReport, HealthStatus};

use crate::chunks::ChunkStore;
use crate::config::LightningstorConfig;
use crate::s3::service::{handle, S3};

pub async fn build(config: LightningstorConfig, context: Context) -> anyhow::Result<Api> {
    let trust = context.tls.trust.clone();
    let records = config.flaredb.connect(trust.clone()).await.map_err(anyhow::Error::msg)?;

    let iam_ca = config.iam.ca.clone().or(trust);
    let (key_id, secret) = credentials(config.iam.credentials_file.as_deref())?;
    let options = photon_client::ChannelOptions { ca: iam_ca.clone(), ..Default::default() };
    let channel = photon_client::lazy_channel(&config.iam.url, &options)?;
    let identity = Arc::new(ServiceToken::login(channel.clone(), key_id, secret));
    let ttl = Duration::from_millis(config.iam.cache_ttl_ms);
    let keys = AccessKeys::new(channel, identity.clone(), ttl);
    let mut auth = AuthConfig::new(config.iam.url.clone());
    auth.ca = iam_ca;
    auth.decision_ttl = ttl;
    let auth = Arc::new(AuthClient::new(auth).map_err(anyhow::Error::msg)?);

    let data = config.server.data_dir.join("chunks");
    let chunks = Arc::new(ChunkStore::open(&data, config.storage.chunk_bytes)?);
    let s3 = Arc::new(S3 { records, chunks, keys, auth, identity, config: config.s3.clone() });
    let router = axum::Router::new().fallback(handle).with_state(s3);
    let listener = tokio::net::TcpListener::bind(config.s3.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on the S3 port {} (s3.listen): {e}", config.s3.listen))?;
    let tls = if config.s3.plaintext { None } else { context.tls.config.clone() };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(endpoint = %format!("{scheme}://{}", config.s3.listen), "serving S3");
    let drain = Duration::from_secs(config.server.shutdown_timeout_secs);
    context.tasks.spawn(photon_runtime::serve_port(listener, tls, router, context.shutdown.clone(), drain));

    Ok(Api::new(move || health(&data)))
}

/// LightningStor's own access key, from the credentials file IAM's bootstrap wrote.
fn credentials(file: Option<&std::path::Path>) -> anyhow::Result<(String, String)> {
    let file = file.ok_or_else(|| {
        anyhow::anyhow!(
            "iam.credentials_file is not set: LightningStor needs its service account's credentials (IAM writes them \
             with bootstrap.services = [\"lightningstor\"])"
        )
    })?;
    let text =
        std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("iam.credentials_file {}: {e}", file.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("iam.credentials_file {} is not JSON: {e}", file.display()))?;
    match (doc["key_id"].as_str(), doc["secret"].as_str()) {
        (Some(key_id), Some(secret)) => Ok((key_id.to_string(), secret.to_string())),
        _ => anyhow::bail!("iam.credentials_file {} lacks key_id or secret", file.display()),
    }
}

/// `/health`: `{"status","volumes","total_gb"}`: healthy while the data directory answers.
fn health(data: &std::path::Path) -> HealthReport {
    match disk_gb(data) {
        Some(total) => HealthReport::new(HealthStatus::Healthy).with("volumes", 1).with("total_gb", total),
        None => HealthReport::new(HealthStatus::Unhealthy).with("volumes", 0).with("total_gb", 0),
    }
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
