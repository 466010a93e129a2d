//! A service binary's life from `main` to exit, told in order: load config, start logging, set
//! up TLS, bind, build the service, serve, and on SIGTERM drain and stop. `main.rs` of every
//! service is a call to [`run`]; tests call [`serve`] with their own listener and shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Interval;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, ServiceConfig, ServiceSpec};
use crate::notify::Notifier;
use crate::serve::serve_with_streams;
use crate::{signals, telemetry, tls_setup, Api, RuntimeError};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Exit code for a configuration error (what clap uses for usage errors).
const EXIT_CONFIG: u8 = 2;

/// What a service gets while it builds itself: the shutdown signal its background work must
/// watch, the tracker those tasks are spawned on so shutdown can wait for them, and the API
/// port's TLS files (for peer links that reuse them).
#[derive(Clone)]
pub struct Context {
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    pub tls: crate::TlsSetup,
}

/// Runs a service binary: `common` are its parsed common flags, `extra` the config keys its
/// own flags and `--cluster-config` set, `build` makes its [`Api`] from the loaded config.
pub fn run<C, F, Fut>(
    spec: ServiceSpec,
    common: crate::CommonArgs,
    extra: impl Into<crate::cli::Overrides>,
    build: F,
) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, Context) -> Fut,
    Fut: Future<Output = Result<Api, BoxError>>,
{
    let env: Vec<(String, String)> = std::env::vars().collect();
    let file = common.config_file(&spec, &env);
    let extra: crate::cli::Overrides = extra.into();
    let mut flags = extra.flags;
    flags.extend(common.overrides());
    let config: C = match config::load_with(&spec, file.as_deref(), &extra.cluster_config, &env, &flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}: {e}", program_name(&spec));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if common.print_config {
        return match config::render_toml(&config) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", program_name(&spec));
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = telemetry::init(config.sections().log) {
        eprintln!("{}: {e}", program_name(&spec));
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", program_name(&spec));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(start(spec, config, file, build)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            match e {
                RuntimeError::Config(_) => ExitCode::from(EXIT_CONFIG),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// The name the binary was started as, for messages before logging is up.
fn program_name(spec: &ServiceSpec) -> String {
    std::env::args_os()
        .next()
        .and_then(|arg0| std::path::Path::new(&arg0).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| format!("{}-server", spec.name))
}

async fn start<C, F, Fut>(spec: ServiceSpec, config: C, file: Option<PathBuf>, build: F) -> Result<(), RuntimeError>
where
    C: ServiceConfig,
    F: FnOnce(C, Context) -> Fut,
    Fut: Future<Output = Result<Api, BoxError>>,
{
    let server = config.sections().server.clone();
    tracing::info!(
        service = spec.name,
        version = spec.version,
        config = %file.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "(none, defaults)".into()),
        data_dir = %server.data_dir.display(),
        mode = ?server.mode,
        "starting"
    );
    std::fs::create_dir_all(&server.data_dir)
        .map_err(|source| RuntimeError::DataDir { path: server.data_dir.clone(), source })?;
    let tls = tls_setup::prepare(spec.name, &server, config.sections().tls)?;
    let listener =
        TcpListener::bind(server.listen).await.map_err(|source| RuntimeError::Bind { addr: server.listen, source })?;

    let shutdown = CancellationToken::new();
    let signals = signals::cancel_on_signal(shutdown.clone())
        .map_err(|e| RuntimeError::Startup(format!("cannot install signal handlers: {e}")))?;
    let tasks = TaskTracker::new();
    let context = Context { shutdown: shutdown.clone(), tasks: tasks.clone(), tls: tls.clone() };
    let api = build(config, context).await.map_err(RuntimeError::Service)?;

    let drain = Duration::from_secs(server.shutdown_timeout_secs);
    let served = serve(&spec, api, listener, tls.config, shutdown.clone(), drain).await;
    shutdown.cancel();
    tasks.close();
    if tokio::time::timeout(drain, tasks.wait()).await.is_err() {
        tracing::warn!(tasks = tasks.len(), "background tasks did not stop within the shutdown deadline");
    }
    signals.abort();
    served?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Serves `api` on `listener` until `shutdown` fires, then drains for up to `drain`. Sends
/// READY=1 once accepting, STOPPING=1 when the drain starts, and watchdog pings throughout.
pub async fn serve(
    spec: &ServiceSpec,
    mut api: Api,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
    drain: Duration,
) -> Result<(), RuntimeError> {
    let addr = listener.local_addr().map_err(|e| RuntimeError::Startup(format!("listener has no address: {e}")))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let notifier = Notifier::from_env();
    let streams = api.take_streams();
    let router = api.into_router(spec, shutdown.clone());
    let mut serving = tokio::spawn(serve_with_streams(listener, tls, router, streams, shutdown.clone(), drain));
    let mut watchdog = Notifier::watchdog_interval().map(tokio::time::interval);

    tracing::info!(endpoint = %format!("{scheme}://{addr}"), "serving gRPC, REST, /health and /metrics");
    notifier.send(&format!("READY=1\nSTATUS=serving on {scheme}://{addr}"));
    let mut stopping = false;
    loop {
        tokio::select! {
            // Shutdown is looked at first: with nothing in flight the accept loop finishes in the
            // same instant, and systemd must still hear STOPPING=1 before we exit.
            biased;
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                notifier.send("STOPPING=1\nSTATUS=draining in-flight requests");
            }
            joined = &mut serving => {
                return joined.map_err(|e| RuntimeError::Startup(format!("the accept loop failed: {e}")));
            }
            _ = tick(&mut watchdog) => notifier.send("WATCHDOG=1"),
        }
    }
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
