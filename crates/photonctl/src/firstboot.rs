//! `photonctl firstboot <step>`: the first-boot units' work, once per node, in order:
//! chainfire-join → flaredb-join → iam-setup → health-check. Each step checks
//! cluster-config.json first (a wrong or half-written one is refused with the field named),
//! waits for what it needs with a progress line every few seconds, and leaves
//! `<state-dir>/firstboot/<step>.done` when it succeeds, so a reboot repeats nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use photon_api::etcd::etcdserverpb::cluster_client::ClusterClient;
use photon_api::etcd::etcdserverpb::kv_client::KvClient;
use photon_api::etcd::etcdserverpb::{MemberListRequest, PutRequest, RangeRequest};
use photon_client::{channel, probe_health, ChannelOptions};
use photon_runtime::cluster_config::ClusterConfig;
use serde_json::Value;

use crate::private_file::write_private;

/// Where the node that holds the first administrator's password records itself.
const ADMIN_PASSWORD_HOLDER: &str = "/photoncloud/firstboot/admin-password-holder";
/// How often a waiting step says what it is waiting for.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    /// chainfire answers healthy and lists this node as a member (voter on the control plane,
    /// learner on a worker).
    ChainfireJoin,
    /// flaredb's store answers healthy (control plane only).
    FlaredbJoin,
    /// IAM answers, the first administrator exists; its password, if this node's IAM made it,
    /// is checked by logging in and kept 0600 in <state-dir>/initial-admin-password.
    IamSetup,
    /// Every local service healthy and chainfire's Raft quorum present; fails naming what is not.
    HealthCheck,
}

impl Step {
    fn name(self) -> &'static str {
        match self {
            Self::ChainfireJoin => "chainfire-join",
            Self::FlaredbJoin => "flaredb-join",
            Self::IamSetup => "iam-setup",
            Self::HealthCheck => "health-check",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct FirstBootArgs {
    /// The step to run.
    #[arg(value_enum)]
    pub step: Step,
    /// This node's cluster-config.json.
    #[arg(long, value_name = "FILE", default_value = "/etc/photoncloud/cluster-config.json")]
    pub cluster_config: PathBuf,
    /// Where markers (firstboot/<step>.done) and the administrator's password are kept.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/photoncloud")]
    pub state_dir: PathBuf,
    /// IAM's state directory (where it writes the generated administrator password and the
    /// service accounts' credentials).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/iam")]
    pub iam_data_dir: PathBuf,
    /// Where service-account credentials from IAM are installed for other units (0600).
    #[arg(long, value_name = "DIR", default_value = "/etc/photoncloud/credentials")]
    pub credentials_dir: PathBuf,
    /// How long to wait for the services before failing.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub timeout: u64,
}

/// Where this node's services answer, and the CA they are trusted with.
pub struct Local {
    pub host: String,
    pub port_offset: u16,
    pub ca: Option<PathBuf>,
}

impl Local {
    /// This node's API URL of `service` (its catalog port).
    fn url(&self, service: &str) -> String {
        let port = crate::catalog::CATALOG.iter().find(|e| e.name == service).map_or(0, |e| e.api_port);
        format!("https://{}:{}", self.host, port + self.port_offset)
    }
}

pub async fn run(args: FirstBootArgs, local: Local) -> anyhow::Result<()> {
    let cluster = ClusterConfig::read(&args.cluster_config).map_err(anyhow::Error::msg)?;
    cluster.read_gossip_key(&args.cluster_config).map_err(anyhow::Error::msg)?;
    let ca = local.ca.clone().or_else(|| cluster.tls.as_ref().map(|t| cluster.resolve(&args.cluster_config, &t.ca)));
    let local = Local { ca, ..local };
    let marker = args.state_dir.join("firstboot").join(format!("{}.done", args.step.name()));
    if let Ok(meta) = std::fs::metadata(&marker) {
        let when = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let when = when.map_or_else(|| "earlier".to_string(), |d| crate::table::date(d.as_secs() as i64));
        println!("{}: already done ({when}; {} exists)", args.step.name(), marker.display());
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let outcome = match args.step {
        Step::ChainfireJoin => chainfire_join(&cluster, &local, deadline).await?,
        Step::FlaredbJoin if !cluster.is_control_plane() => "not a control-plane node: no flaredb here".into(),
        Step::FlaredbJoin => wait_healthy("flaredb", &local.url("flaredb"), &local, deadline)
            .await
            .map(|h| crate::table::health_fields(&h))?,
        Step::IamSetup if !cluster.is_control_plane() => "not a control-plane node: no IAM here".into(),
        Step::IamSetup => iam_setup(&cluster, &args, &local, deadline).await?,
        Step::HealthCheck => health_check(&cluster, &local, deadline).await?,
    };
    std::fs::create_dir_all(marker.parent().unwrap_or(Path::new(".")))
        .with_context(|| format!("cannot create {}", args.state_dir.display()))?;
    std::fs::write(&marker, format!("{outcome}\n")).with_context(|| format!("cannot write {}", marker.display()))?;
    println!("{}: done: {outcome}", args.step.name());
    Ok(())
}

/// Waits until `service` at `url` answers healthy; says what it last answered every few
/// seconds, and fails with that at the deadline.
async fn wait_healthy(service: &str, url: &str, local: &Local, deadline: Instant) -> anyhow::Result<Value> {
    let mut last_said = Instant::now();
    loop {
        let last = match probe_health(url, local.ca.as_deref(), Duration::from_secs(3)).await {
            Ok(answer) if answer.status() == Some("healthy") => return Ok(answer.body),
            Ok(answer) => {
                format!("{} ({})", answer.status().unwrap_or("unknown"), crate::table::health_fields(&answer.body))
            }
            Err(e) => format!("not answering ({e})"),
        };
        if Instant::now() > deadline {
            anyhow::bail!("{service} at {url} is not healthy: {last}");
        }
        if last_said.elapsed() >= PROGRESS_EVERY {
            println!("waiting for {service} at {url}: {last}");
            last_said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn options(local: &Local) -> ChannelOptions {
    ChannelOptions { ca: local.ca.clone(), ..Default::default() }
}

async fn chainfire_join(cluster: &ClusterConfig, local: &Local, deadline: Instant) -> anyhow::Result<String> {
    let url = local.url("chainfire");
    wait_healthy("chainfire", &url, local, deadline).await?;
    let own = cluster
        .own_entry(&cluster.initial_peers)
        .map(|(_, entry)| entry.to_string())
        .unwrap_or_else(|| format!("{}:2380", cluster.own_host()));
    let voter = cluster.is_control_plane();
    let mut last_said = Instant::now();
    loop {
        let channel = channel(&url, &options(local)).await?;
        let members = ClusterClient::new(channel)
            .member_list(MemberListRequest { linearizable: true })
            .await
            .map_err(|s| anyhow::anyhow!("chainfire at {url} cannot list members: {}", s.message()))?
            .into_inner()
            .members;
        let me = members.iter().find(|m| m.peer_ur_ls.iter().any(|u| u.ends_with(&own)));
        match me {
            Some(m) if m.is_learner != voter => {
                let kind = if voter { "voter" } else { "learner" };
                return Ok(format!("member {:x} ({own}) is a {kind} of a {}-member cluster", m.id, members.len()));
            }
            _ if Instant::now() > deadline => {
                let listed: Vec<String> = members.iter().flat_map(|m| m.peer_ur_ls.clone()).collect();
                anyhow::bail!(
                    "chainfire does not list {own} as a {}; members: {listed:?}",
                    if voter { "voter" } else { "learner" }
                );
            }
            _ => {}
        }
        if last_said.elapsed() >= PROGRESS_EVERY {
            println!("waiting for chainfire to list {own} ({} members so far)", members.len());
            last_said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn iam_setup(
    cluster: &ClusterConfig,
    args: &FirstBootArgs,
    local: &Local,
    deadline: Instant,
) -> anyhow::Result<String> {
    let iam = local.url("iam");
    wait_healthy("iam", &iam, local, deadline).await?;
    let ca = local.ca.clone().context("no CA to trust IAM with (cluster-config.json has no tls.ca)")?;
    let installed = install_service_credentials(&args.iam_data_dir.join("services"), &args.credentials_dir)?;
    let generated = args.iam_data_dir.join("initial-admin-password");
    let chainfire = local.url("chainfire");
    if generated.is_file() {
        let password =
            std::fs::read_to_string(&generated).with_context(|| format!("cannot read {}", generated.display()))?;
        crate::iam::password_token(&iam, &ca, "admin", password.trim().to_string())
            .await
            .context("the generated administrator password does not log in")?;
        let kept = args.state_dir.join("initial-admin-password");
        write_private(&kept, &password)?;
        let channel = channel(&chainfire, &options(local)).await?;
        let record = PutRequest {
            key: ADMIN_PASSWORD_HOLDER.into(),
            value: cluster.node_id.clone().into_bytes(),
            ..Default::default()
        };
        KvClient::new(channel)
            .put(record)
            .await
            .map_err(|s| anyhow::anyhow!("cannot record the holder: {}", s.message()))?;
        println!("the first administrator is 'admin'; its password is in {} (readable by root only)", kept.display());
        return Ok(format!("administrator password checked and kept in {}; {installed}", kept.display()));
    }
    // Another node's IAM created the administrator: say where its password is.
    let channel = channel(&chainfire, &options(local)).await?;
    let mut kv = KvClient::new(channel);
    let mut last_said = Instant::now();
    loop {
        let found = kv
            .range(RangeRequest { key: ADMIN_PASSWORD_HOLDER.into(), ..Default::default() })
            .await
            .map_err(|s| anyhow::anyhow!("cannot read {ADMIN_PASSWORD_HOLDER}: {}", s.message()))?
            .into_inner()
            .kvs;
        if let Some(kv) = found.first() {
            let holder = String::from_utf8_lossy(&kv.value).to_string();
            let place = args.state_dir.join("initial-admin-password");
            println!(
                "the first administrator 'admin' was made by {holder}'s IAM; its password is in {} on {holder}",
                place.display()
            );
            return Ok(format!("administrator password kept on {holder}; {installed}"));
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "IAM is up but no node reported the first administrator's password (none in {} here)",
                generated.display()
            );
        }
        if last_said.elapsed() >= PROGRESS_EVERY {
            println!("waiting for the node whose IAM made the first administrator to report it");
            last_said = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Copies IAM's service-account credentials (`<name>.json`) to `to`, mode 0600, for the units
/// of those services to load as credentials.
fn install_service_credentials(from: &Path, to: &Path) -> anyhow::Result<String> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok("no service credentials on this node".into()) };
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
            write_private(&to.join(entry.file_name()), &text)?;
            names.push(entry.file_name().to_string_lossy().to_string());
        }
    }
    Ok(format!("service credentials installed in {}: {}", to.display(), names.join(", ")))
}

async fn health_check(cluster: &ClusterConfig, local: &Local, deadline: Instant) -> anyhow::Result<String> {
    let mut services = vec!["chainfire"];
    if cluster.is_control_plane() {
        services.extend(["flaredb", "iam"]);
    }
    let mut report = Vec::new();
    let mut missing = Vec::new();
    for name in services {
        match wait_healthy(name, &local.url(name), local, deadline).await {
            Ok(health) => report.push(format!("{name} healthy ({})", crate::table::health_fields(&health))),
            Err(e) => missing.push(e.to_string()),
        }
    }
    // Quorum: chainfire's Raft has a leader and a majority of its voters answer.
    let planned = cluster.initial_peers.len();
    match probe_health(&local.url("chainfire"), local.ca.as_deref(), Duration::from_secs(3)).await {
        Ok(answer) => {
            let voters = answer.body["cluster_size"].as_u64().unwrap_or(0) as usize;
            if voters < planned {
                missing.push(format!("chainfire has {voters} voters; cluster-config.json plans {planned}"));
            }
        }
        Err(e) => missing.push(format!("chainfire: {e}")),
    }
    if !missing.is_empty() {
        anyhow::bail!("the cluster is not ready on this node:\n  - {}", missing.join("\n  - "));
    }
    Ok(report.join("; "))
}
