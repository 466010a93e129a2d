//! `photonctl up`: the whole platform on one node, in the foreground. Starts each service
//! binary that exists in catalog order, waits for health where the catalog says Requires,
//! restarts crashed services with backoff, and on Ctrl-C or SIGTERM stops everything in reverse
//! order.

mod child;
mod plan;
mod s3_access;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use self::child::Child;
use self::plan::{decide, restart_backoff, Decision, Phase};
use crate::catalog::{ServiceEntry, CATALOG};
use crate::endpoints::Endpoints;

/// How often the supervisor looks at its services.
const TICK: Duration = Duration::from_millis(200);
/// Exit status of a service refusing its configuration (the runtime's convention). Restarting
/// cannot fix that, so, like systemd's `RestartPreventExitStatus=2`, it is not restarted.
const EXIT_CONFIG_ERROR: i32 = 2;
/// A service healthy this long has its crash count forgotten.
const STABLE_AFTER: Duration = Duration::from_secs(30);

pub struct UpArgs {
    pub data_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    pub endpoints: Endpoints,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
}

struct Managed {
    entry: &'static ServiceEntry,
    binary: Option<PathBuf>,
    child: Option<Child>,
    first_launch: Option<Instant>,
    healthy_since: Option<Instant>,
    last_status: Option<String>,
    blocked: Option<String>,
    crashes: u32,
    restart_at: Option<Instant>,
}

impl Managed {
    fn phase(&self, now: Instant) -> Phase {
        if self.binary.is_none() {
            return Phase::Missing;
        }
        if let Some(reason) = &self.blocked {
            return Phase::Blocked(reason.clone());
        }
        match (self.first_launch, self.healthy_since) {
            (None, _) => Phase::Pending,
            (Some(_), Some(_)) => Phase::Healthy,
            (Some(first), None) => Phase::Starting { for_how_long: now - first },
        }
    }
}

fn say(message: impl AsRef<str>) {
    println!("    photonctl | {}", message.as_ref());
}

/// Where to look for `<service>-server` binaries: `--bin-dir`s if given, else photonctl's own
/// directory and then `$PATH`.
fn search_dirs(explicit: &[PathBuf]) -> Vec<PathBuf> {
    if !explicit.is_empty() {
        return explicit.to_vec();
    }
    let mut dirs: Vec<PathBuf> =
        std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)).into_iter().collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs
}

/// Holds an exclusive lock on `<data>/photonctl-up.lock` while `up` runs.
fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join("photonctl-up.lock");
    let file = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!("another `photonctl up` is already running with data dir {}", data_dir.display());
    }
    Ok(file)
}

pub async fn run(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(args.data_dir.join("logs"))
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let _lock = lock_data_dir(&data_dir)?;

    let dirs = search_dirs(&args.bin_dirs);
    let mut services: Vec<Managed> = CATALOG
        .iter()
        .map(|entry| Managed {
            entry,
            binary: dirs.iter().map(|d| d.join(entry.binary_name())).find(|p| p.is_file()),
            child: None,
            first_launch: None,
            healthy_since: None,
            last_status: None,
            blocked: None,
            crashes: 0,
            restart_at: None,
        })
        .collect();
    let (found, missing): (Vec<&Managed>, Vec<&Managed>) = services.iter().partition(|m| m.binary.is_some());
    if found.is_empty() {
        bail!(
            "no service binaries found: looked for {} in {}. Build them with `cargo build --release --bins` \
             and point --bin-dir at target/release",
            CATALOG.iter().map(|e| e.binary_name()).collect::<Vec<_>>().join(", "),
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":")
        );
    }
    for m in &found {
        say(format!("found {}", m.binary.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_default()));
    }
    if !missing.is_empty() {
        say(format!(
            "not installed (skipped): {}",
            missing.iter().map(|m| m.entry.name).collect::<Vec<_>>().join(", ")
        ));
    }

    let ca_dir = data_dir.join("dev-ca");
    let (ca, created) = photon_tls::DevCa::load_or_create(&ca_dir)?;
    say(format!("development CA {}: {}", if created { "created" } else { "reused" }, ca.cert_path().display()));

    let mut launch_order: Vec<usize> = Vec::new();
    let mut announced = false;
    while !shutdown.is_cancelled() {
        let now = Instant::now();
        reap_and_restart(&mut services, &args, &data_dir, &ca_dir, now);
        probe(&mut services, &args.endpoints, &ca.cert_path(), &args.data_dir, now).await;
        start_ready(&mut services, &mut launch_order, &args, &data_dir, &ca_dir, now);
        if !announced && services.iter().all(|m| !matches!(m.phase(now), Phase::Pending | Phase::Starting { .. })) {
            announced = true;
            announce(&services, &args.endpoints, &ca.cert_path(), &data_dir);
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(TICK) => {}
        }
    }

    say("stopping services in reverse start order");
    for &i in launch_order.iter().rev() {
        let m = &mut services[i];
        if let Some(mut child) = m.child.take() {
            let status = child.stop(args.stop_timeout).await;
            say(format!("stopped {} ({status})", m.entry.name));
        }
    }
    say("all services stopped");
    Ok(())
}

fn launch(m: &mut Managed, args: &UpArgs, data_dir: &Path, ca_dir: &Path, now: Instant) {
    let Some(binary) = m.binary.clone() else {
        return;
    };
    let port = args.endpoints.port(m.entry);
    let data = data_dir.join(m.entry.name);
    let argv = vec![
        "--listen".to_string(),
        format!("{}:{port}", args.endpoints.host),
        "--data-dir".to_string(),
        data.display().to_string(),
        "--dev-ca-dir".to_string(),
        ca_dir.display().to_string(),
    ];
    let substitute = |value: &str| {
        let mut value = value
            .replace("{data}", &data.display().to_string())
            .replace("{port+1}", &(port + 1).to_string())
            .replace("{port+2}", &(port + 2).to_string())
            .replace("{port}", &port.to_string())
            .replace("{offset}", &args.endpoints.port_offset.to_string());
        for other in crate::catalog::CATALOG {
            value = value.replace(&format!("{{url:{}}}", other.name), &args.endpoints.url(other));
        }
        // `{port:N}`: port N as `up` serves it (above 1024, moved by the offset).
        while let Some(start) = value.find("{port:") {
            let Some(len) = value[start..].find('}') else { break };
            let moved = value[start + 6..start + len]
                .parse::<u16>()
                .ok()
                .and_then(|p| crate::endpoints::up_port(p, args.endpoints.port_offset));
            let text = moved.map(|p| p.to_string()).unwrap_or_default();
            value.replace_range(start..start + len + 1, &text);
        }
        value
    };
    let env: Vec<(String, String)> = m.entry.env.iter().map(|(k, v)| (k.to_string(), substitute(v))).collect();
    let log = data_dir.join("logs").join(format!("{}.log", m.entry.name));
    match Child::spawn(m.entry.name, &binary, &argv, &env, log) {
        Ok(child) => {
            say(format!(
                "started {} (pid {}) on {}",
                m.entry.name,
                child.pid().unwrap_or(0),
                args.endpoints.url(m.entry)
            ));
            m.child = Some(child);
            m.first_launch.get_or_insert(now);
        }
        Err(e) => {
            m.crashes += 1;
            let delay = restart_backoff(m.crashes);
            say(format!("cannot start {}: {e}; retrying in {}s", m.entry.name, delay.as_secs()));
            m.first_launch.get_or_insert(now);
            m.restart_at = Some(now + delay);
        }
    }
}

fn reap_and_restart(services: &mut [Managed], args: &UpArgs, data_dir: &Path, ca_dir: &Path, now: Instant) {
    for m in services.iter_mut() {
        if let Some(status) = m.child.as_mut().and_then(Child::try_exit) {
            m.child = None;
            m.healthy_since = None;
            m.last_status = None;
            if status.code() == Some(EXIT_CONFIG_ERROR) {
                let reason = format!(
                    "it exited with a configuration error ({status}); see its log above, fix it and run up again"
                );
                say(format!("{} not restarted: {reason}", m.entry.name));
                m.blocked = Some(reason);
                continue;
            }
            m.crashes += 1;
            let delay = restart_backoff(m.crashes);
            say(format!(
                "{} exited ({status}); restarting in {}s (crash #{})",
                m.entry.name,
                delay.as_secs(),
                m.crashes
            ));
            m.restart_at = Some(now + delay);
        }
        if m.restart_at.is_some_and(|at| at <= now) {
            m.restart_at = None;
            launch(m, args, data_dir, ca_dir, now);
        }
    }
}

async fn probe(services: &mut [Managed], endpoints: &Endpoints, ca: &Path, data_dir: &Path, now: Instant) {
    let running: Vec<usize> = (0..services.len()).filter(|&i| services[i].child.is_some()).collect();
    let answers = join_all(running.iter().map(|&i| {
        let url = endpoints.url(services[i].entry);
        async move { photon_client::probe_health(&url, Some(ca), Duration::from_secs(1)).await }
    }))
    .await;
    for (&i, answer) in running.iter().zip(answers) {
        let m = &mut services[i];
        let (healthy, status) = match &answer {
            Ok(a) => (a.http_status == 200, a.status().unwrap_or("unknown").to_string()),
            Err(_) => (false, "not answering".to_string()),
        };
        if healthy && m.healthy_since.is_none() {
            say(format!("{} is healthy", m.entry.name));
            m.healthy_since = Some(now);
            for (_, file, message) in crate::catalog::READY_NOTES.iter().filter(|(s, _, _)| *s == m.entry.name) {
                let path = data_dir.join(m.entry.name).join(file);
                if path.exists() {
                    say(message.replace("{path}", &path.display().to_string()));
                }
            }
            if m.entry.name == "flashdns" {
                let port = endpoints.dns_port();
                say(format!("flashdns: DNS is at 127.0.0.1:{port}; try: dig @127.0.0.1 -p {port} health.local"));
            }
            if m.entry.name == "lightningstor" {
                let iam = CATALOG.iter().find(|e| e.name == "iam").map(|e| endpoints.url(e)).unwrap_or_default();
                let s3 = endpoints.s3_url();
                match s3_access::ensure(&iam, ca, data_dir, &s3).await {
                    Ok(command) => say(format!("lightningstor: S3 is at {s3}; try: {command}")),
                    Err(e) => say(format!(
                        "lightningstor: no S3 access key was made ({e:#}); create one with photonctl iam access-key create"
                    )),
                }
            }
        } else if !healthy && m.healthy_since.is_some() {
            say(format!("{} is {status}", m.entry.name));
            m.healthy_since = None;
        } else if !healthy && answer.is_ok() && m.last_status.as_deref() != Some(&status) {
            say(format!(
                "{} reports {status}: {}",
                m.entry.name,
                answer.as_ref().map(|a| a.body.to_string()).unwrap_or_default()
            ));
        }
        m.last_status = Some(status);
        if m.healthy_since.is_some_and(|since| now - since >= STABLE_AFTER) {
            m.crashes = 0;
        }
    }
}

fn start_ready(
    services: &mut [Managed],
    order: &mut Vec<usize>,
    args: &UpArgs,
    data_dir: &Path,
    ca_dir: &Path,
    now: Instant,
) {
    for i in 0..services.len() {
        if services[i].phase(now) != Phase::Pending {
            continue;
        }
        let decision = {
            let view = &*services;
            let phase_of =
                |name: &str| view.iter().find(|m| m.entry.name == name).map(|m| m.phase(now)).unwrap_or(Phase::Missing);
            decide(view[i].entry, phase_of, args.start_timeout)
        };
        match decision {
            Decision::Start => {
                launch(&mut services[i], args, data_dir, ca_dir, now);
                order.push(i);
            }
            Decision::Block(reason) => {
                say(format!("{} not started: {reason}", services[i].entry.name));
                services[i].blocked = Some(reason);
            }
            Decision::Wait => {}
        }
    }
}

fn announce(services: &[Managed], endpoints: &Endpoints, ca: &Path, data_dir: &Path) {
    say("PhotonCloud is up:");
    for m in services {
        let state = if m.binary.is_none() {
            "not installed".to_string()
        } else if let Some(reason) = &m.blocked {
            format!("not started: {reason}")
        } else {
            m.last_status.clone().unwrap_or_else(|| "starting".into())
        };
        say(format!("  {:<14} {:<26} {state}", m.entry.name, endpoints.url(m.entry)));
    }
    say(format!("trust the development CA: {}", ca.display()));
    say(format!(
        "logs: {}/logs/<service>.log; `photonctl status` shows health; Ctrl-C stops everything",
        data_dir.display()
    ));
}
