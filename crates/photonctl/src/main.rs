//! `photonctl`, the PhotonCloud operator and tenant CLI. `up` runs the whole platform on one
//! node in the foreground; `status` reports every service's health.

mod catalog;
mod db;
mod endpoints;
mod iam;
mod kv;
mod objects;
mod status;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::endpoints::Endpoints;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Operate and use a PhotonCloud platform.
#[derive(Debug, Parser)]
#[command(name = "photonctl", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the platform's services listen.
#[derive(Debug, clap::Args)]
struct Target {
    /// Address the services listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Added to every service's default API port (e.g. 20000 puts chainfire on 22379), to run a
    /// second platform beside the default one.
    #[arg(long, default_value_t = 0)]
    port_offset: u16,
    /// Platform data directory: services keep state in <DIR>/<service>, the development CA is
    /// <DIR>/dev-ca/ca.crt and logs are in <DIR>/logs.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
}

/// One service of the platform: where it answers and which CA to trust.
#[derive(Debug, clap::Args)]
struct ServiceTarget {
    #[command(flatten)]
    target: Target,
    /// The service's endpoint. Default: https://<host>:<its API port + port offset>.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// CA certificate to trust. Default: <data-dir>/dev-ca/ca.crt.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

impl ServiceTarget {
    /// The endpoint and CA for `service`.
    fn resolve(self, service: &str) -> anyhow::Result<(String, PathBuf)> {
        let ca = self.ca.unwrap_or_else(|| self.target.data_dir.join("dev-ca").join(photon_tls::CA_CERT_FILE));
        let entry = catalog::CATALOG
            .iter()
            .find(|e| e.name == service)
            .with_context(|| format!("{service} is not in the catalog"))?;
        let endpoint = match self.endpoint {
            Some(endpoint) => endpoint,
            None => Endpoints::new(self.target.host, self.target.port_offset)?.url(entry),
        };
        Ok((endpoint, ca))
    }
}

/// LightningStor's S3 endpoint and the access key to sign with.
#[derive(Debug, clap::Args)]
struct S3Target {
    /// (`--endpoint` defaults to https://<host>:<9000 + port offset>, the S3 port.)
    #[command(flatten)]
    service: ServiceTarget,
    /// AWS credentials file whose [photon] or [default] profile holds the key (unless
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set). Default: the one `photonctl up`
    /// writes, <data-dir>/lightningstor/aws/credentials.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
}

impl S3Target {
    fn client(self) -> anyhow::Result<photon_s3::S3Client> {
        let ServiceTarget { target, endpoint, ca } = self.service;
        let ca = ca.unwrap_or_else(|| target.data_dir.join("dev-ca").join(photon_tls::CA_CERT_FILE));
        let file = self.credentials.unwrap_or_else(|| target.data_dir.join("lightningstor/aws/credentials"));
        let endpoint = match endpoint {
            Some(endpoint) => endpoint,
            None => Endpoints::new(target.host, target.port_offset)?.s3_url(),
        };
        photon_s3::S3Client::new(&endpoint, Some(&ca), photon_s3::credentials(&file)?, "us-east-1")
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the whole platform on this node, in the foreground.
    ///
    /// Launches every <service>-server binary found, in the order chainfire → flaredb → iam →
    /// application tier. A service whose Requires dependency never becomes healthy is not
    /// started; crashed services are restarted with backoff (1 s doubling to 30 s). Ctrl-C or
    /// SIGTERM stops everything in reverse order and exits 0.
    Up {
        #[command(flatten)]
        target: Target,
        /// Where to find <service>-server binaries (repeatable). Default: photonctl's own
        /// directory, then $PATH.
        #[arg(long = "bin-dir", value_name = "DIR")]
        bin_dirs: Vec<PathBuf>,
        /// Seconds a dependency may take to become healthy before its dependents give up on it.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        start_timeout: u64,
        /// Seconds a service may take to stop after SIGTERM before it is killed.
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        stop_timeout: u64,
    },
    /// Read and write keys in chainfire.
    Kv {
        #[command(flatten)]
        service: ServiceTarget,
        /// table or json.
        #[arg(long, short, value_enum, default_value = "table")]
        output: OutputFormat,
        #[command(subcommand)]
        command: kv::KvCommand,
    },
    /// Read and write keys in FlareDB.
    Db {
        #[command(flatten)]
        service: ServiceTarget,
        /// The namespace the keys are in.
        #[arg(long, short, default_value = "default")]
        namespace: String,
        /// table or json.
        #[arg(long, short, value_enum, default_value = "table")]
        output: OutputFormat,
        #[command(subcommand)]
        command: db::DbCommand,
    },
    /// Buckets in LightningStor (S3): ls, mb, rb.
    Bucket {
        #[command(flatten)]
        s3: S3Target,
        #[command(subcommand)]
        command: objects::BucketCommand,
    },
    /// Objects in LightningStor (S3): ls, cp (either way, with a progress bar), rm.
    Object {
        #[command(flatten)]
        s3: S3Target,
        #[command(subcommand)]
        command: objects::ObjectCommand,
    },
    /// Log in to IAM; keeps the tokens in the user's config dir for the other commands.
    Login {
        #[command(flatten)]
        service: ServiceTarget,
        /// The user to log in as.
        user: String,
        /// File holding the password (default: read from stdin).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Show who the saved login is: principal, org, groups, expiry.
    Whoami {
        /// table or json.
        #[arg(long, short, value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Administer IAM (as the logged-in user): orgs, projects, users, groups, roles, bindings,
    /// service accounts, access keys, the audit log.
    Iam {
        /// table or json.
        #[arg(long, short, value_enum, default_value = "table")]
        output: OutputFormat,
        #[command(subcommand)]
        command: iam::IamCommand,
    },
    /// Show every service's health. Exits 0 when at least one service answers and every
    /// service that answers is healthy, 1 otherwise.
    Status {
        #[command(flatten)]
        target: Target,
        /// CA certificate to trust. Default: <data-dir>/dev-ca/ca.crt.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// table or json.
        #[arg(long, short, value_enum, default_value = "table")]
        output: OutputFormat,
    },
}

/// Cancels `token` on the first SIGINT or SIGTERM.
fn cancel_on_signal(token: CancellationToken) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        token.cancel();
    }))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up { target, bin_dirs, start_timeout, stop_timeout } => {
            let shutdown = CancellationToken::new();
            let signals = cancel_on_signal(shutdown.clone())?;
            let args = up::UpArgs {
                endpoints: Endpoints::new(target.host, target.port_offset)?,
                data_dir: target.data_dir,
                bin_dirs,
                start_timeout: Duration::from_secs(start_timeout),
                stop_timeout: Duration::from_secs(stop_timeout),
            };
            let result = up::run(args, shutdown).await;
            signals.abort();
            result.map(|()| ExitCode::SUCCESS)
        }
        Command::Kv { service, output, command } => {
            let (endpoint, ca) = service.resolve("chainfire")?;
            kv::run(&endpoint, ca, command, output).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Db { service, namespace, output, command } => {
            let (endpoint, ca) = service.resolve("flaredb")?;
            db::run(&endpoint, ca, &namespace, command, output).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Bucket { s3, command } => objects::bucket(&s3.client()?, command).await.map(|()| ExitCode::SUCCESS),
        Command::Object { s3, command } => objects::object(&s3.client()?, command).await.map(|()| ExitCode::SUCCESS),
        Command::Login { service, user, password_file } => {
            let (endpoint, ca) = service.resolve("iam")?;
            let ca = std::path::absolute(&ca).unwrap_or(ca);
            iam::login(&endpoint, ca, &user, password_file).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Whoami { output } => iam::whoami(output).await.map(|()| ExitCode::SUCCESS),
        Command::Iam { output, command } => iam::run(command, output).await.map(|()| ExitCode::SUCCESS),
        Command::Status { target, ca, output } => {
            let ca = ca.unwrap_or_else(|| target.data_dir.join("dev-ca").join(photon_tls::CA_CERT_FILE));
            status::run(&Endpoints::new(target.host, target.port_offset)?, ca, output).await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: child processes are spawned from it, so their parent-death signal fires only
    // when photonctl itself exits.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("photonctl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("photonctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
