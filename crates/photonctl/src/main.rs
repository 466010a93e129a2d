//! `photonctl`, the PhotonCloud operator and tenant CLI. `up` runs the whole platform on one
//! node in the foreground; `status` reports every service's health, `node ls` the cluster's
//! nodes; `firstboot` is what the first-boot units run.

mod catalog;
mod console;
mod db;
mod dns;
mod endpoints;
mod firstboot;
mod iam;
mod kv;
mod lb;
mod net;
mod nodes;
mod objects;
mod private_file;
mod resource;
mod rest;
mod status;
mod table;
mod up;
mod vm;
mod volume;

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
///
/// The global flags (--output, --host, --port-offset, --data-dir, --ca, --endpoint) are
/// accepted before or after the subcommand.
#[derive(Debug, Parser)]
#[command(name = "photonctl", version)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Where the platform's services listen, which CA to trust, and how to print.
#[derive(Debug, Clone, clap::Args)]
struct Global {
    /// table or json.
    #[arg(long, short, value_enum, default_value = "table", global = true)]
    output: OutputFormat,
    /// Address the services listen on.
    #[arg(long, default_value = "127.0.0.1", global = true)]
    host: String,
    /// Added to every service's default API port (e.g. 20000 puts chainfire on 22379), to run a
    /// second platform beside the default one.
    #[arg(long, default_value_t = 0, global = true)]
    port_offset: u16,
    /// Platform data directory: services keep state in <DIR>/<service>, the development CA is
    /// <DIR>/dev-ca/ca.crt and logs are in <DIR>/logs.
    #[arg(long, default_value = "./data", global = true)]
    data_dir: PathBuf,
    /// CA certificate to trust. Default: <data-dir>/dev-ca/ca.crt (firstboot: cluster-config's;
    /// dns: the one the login trusted).
    #[arg(long, value_name = "FILE", global = true)]
    ca: Option<PathBuf>,
    /// The endpoint of the service a command talks to. Default: https://<host>:<its API port +
    /// port offset> (for bucket and object, the S3 port; a port below 1024 is tried at port +
    /// 10000 first, where `up` serves it).
    #[arg(long, value_name = "URL", global = true)]
    endpoint: Option<String>,
}

impl Global {
    fn ca(&self) -> PathBuf {
        self.ca.clone().unwrap_or_else(|| self.data_dir.join("dev-ca").join(photon_tls::CA_CERT_FILE))
    }

    fn endpoints(&self) -> anyhow::Result<Endpoints> {
        Endpoints::new(self.host.clone(), self.port_offset)
    }

    /// The endpoint and CA for `service`.
    fn resolve(&self, service: &str) -> anyhow::Result<(String, PathBuf)> {
        let entry = catalog::CATALOG
            .iter()
            .find(|e| e.name == service)
            .with_context(|| format!("{service} is not in the catalog"))?;
        let endpoint = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => self.endpoints()?.url(entry),
        };
        Ok((endpoint, self.ca()))
    }

    /// LightningStor's S3 client, signing with the key in `credentials` (AWS credentials file;
    /// default: the one `photonctl up` writes).
    fn s3_client(&self, credentials: Option<PathBuf>) -> anyhow::Result<photon_s3::S3Client> {
        let file = credentials.unwrap_or_else(|| self.data_dir.join("lightningstor/aws/credentials"));
        let endpoint = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => self.endpoints()?.s3_url(),
        };
        photon_s3::S3Client::new(&endpoint, Some(&self.ca()), photon_s3::credentials(&file)?, "us-east-1")
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
        #[command(subcommand)]
        command: kv::KvCommand,
    },
    /// Read and write keys in FlareDB.
    Db {
        /// The namespace the keys are in.
        #[arg(long, short, default_value = "default")]
        namespace: String,
        #[command(subcommand)]
        command: db::DbCommand,
    },
    /// Buckets in LightningStor (S3): ls, mb, rb.
    Bucket {
        /// AWS credentials file whose [photon] or [default] profile holds the key (unless
        /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set). Default: the one `photonctl up`
        /// writes, <data-dir>/lightningstor/aws/credentials.
        #[arg(long, value_name = "FILE")]
        credentials: Option<PathBuf>,
        #[command(subcommand)]
        command: objects::BucketCommand,
    },
    /// Objects in LightningStor (S3): ls, cp (either way, with a progress bar), rm.
    Object {
        /// AWS credentials file (as for `bucket`).
        #[arg(long, value_name = "FILE")]
        credentials: Option<PathBuf>,
        #[command(subcommand)]
        command: objects::ObjectCommand,
    },
    /// Log in to IAM; keeps the tokens in the user's config dir for the other commands.
    Login {
        /// The user to log in as.
        user: String,
        /// File holding the password (default: read from stdin).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Show who the saved login is: principal, org, groups, expiry.
    Whoami,
    /// Administer IAM (as the logged-in user): orgs, projects, users, groups, roles, bindings,
    /// service accounts, access keys, the audit log.
    Iam {
        #[command(subcommand)]
        command: iam::IamCommand,
    },
    /// Zones and record sets in FlashDNS (authoritative DNS), as the saved login.
    ///
    /// --org and --project name the project whose zones these are; they default to the
    /// login's org and (for a service account) project.
    Dns {
        #[command(flatten)]
        project: dns::ProjectArgs,
        #[command(subcommand)]
        command: dns::DnsCommand,
    },
    /// Load balancers in FiberLB (listeners, pools, backends, health checks), as the saved login.
    ///
    /// --org and --project name the project; they default to the login's.
    Lb {
        #[command(flatten)]
        project: dns::ProjectArgs,
        #[command(subcommand)]
        command: lb::LbCommand,
    },
    /// Tenant networks in PrismNET (VPCs, subnets, ports, security groups, routers, floating
    /// IPs), as the saved login.
    ///
    /// --org and --project name the project; they default to the login's.
    Net {
        #[command(flatten)]
        project: dns::ProjectArgs,
        #[command(subcommand)]
        command: net::NetCommand,
    },
    /// Virtual machines in PlasmaVMC: create (waits until it runs), ls, show, start, stop,
    /// reboot, rm, as the saved login.
    ///
    /// --org and --project name the project; they default to the login's.
    Vm {
        #[command(flatten)]
        project: dns::ProjectArgs,
        #[command(subcommand)]
        command: vm::VmCommand,
    },
    /// VM images in PlasmaVMC (a disk, or a kernel and initramfs to boot directly, by URL).
    Image {
        #[command(flatten)]
        project: dns::ProjectArgs,
        #[command(subcommand)]
        command: vm::ImageCommand,
    },
    /// VM flavours in PlasmaVMC (vCPUs, memory, root disk size).
    Flavor {
        #[command(flatten)]
        project: dns::ProjectArgs,
        #[command(subcommand)]
        command: vm::FlavorCommand,
    },
    /// Block volumes in LightningStor (snapshots, clones, attachments for QEMU over NBD), as the
    /// saved login.
    ///
    /// --org and --project name the project; they default to the login's.
    Volume {
        #[command(flatten)]
        project: dns::ProjectArgs,
        #[command(subcommand)]
        command: volume::VolumeCommand,
    },
    /// Show every service's health on this node, then every node's services as the cluster's
    /// membership reports them. Exits 0 when at least one service answers and every service that
    /// answers is healthy, 1 otherwise.
    Status,
    /// The cluster's nodes (chainfire's membership table).
    Node {
        #[command(subcommand)]
        command: nodes::NodeCommand,
    },
    /// First-boot steps the systemd units run once per node (chainfire-join, flaredb-join,
    /// iam-setup, health-check); each leaves a marker so a reboot repeats nothing.
    Firstboot(firstboot::FirstBootArgs),
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
    let global = cli.global;
    let output = global.output;
    let done = |result: anyhow::Result<()>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Up { bin_dirs, start_timeout, stop_timeout } => {
            let shutdown = CancellationToken::new();
            let signals = cancel_on_signal(shutdown.clone())?;
            let args = up::UpArgs {
                endpoints: global.endpoints()?,
                data_dir: global.data_dir.clone(),
                bin_dirs,
                start_timeout: Duration::from_secs(start_timeout),
                stop_timeout: Duration::from_secs(stop_timeout),
            };
            let result = up::run(args, shutdown).await;
            signals.abort();
            done(result)
        }
        Command::Kv { command } => {
            let (endpoint, ca) = global.resolve("chainfire")?;
            done(kv::run(&endpoint, ca, command, output).await)
        }
        Command::Db { namespace, command } => {
            let (endpoint, ca) = global.resolve("flaredb")?;
            done(db::run(&endpoint, ca, &namespace, command, output).await)
        }
        Command::Bucket { credentials, command } => {
            done(objects::bucket(&global.s3_client(credentials)?, command).await)
        }
        Command::Object { credentials, command } => {
            done(objects::object(&global.s3_client(credentials)?, command).await)
        }
        Command::Login { user, password_file } => {
            let (endpoint, ca) = global.resolve("iam")?;
            let ca = std::path::absolute(&ca).unwrap_or(ca);
            done(iam::login(&endpoint, ca, &user, password_file).await)
        }
        Command::Whoami => done(iam::whoami(output).await),
        Command::Iam { command } => done(iam::run(command, output).await),
        Command::Dns { project, command } => {
            let target =
                rest::Target { endpoints: global.endpoints()?, endpoint: global.endpoint.clone(), ca: global.ca };
            done(dns::run(target, project, command, output).await)
        }
        Command::Lb { project, command } => {
            let target =
                rest::Target { endpoints: global.endpoints()?, endpoint: global.endpoint.clone(), ca: global.ca };
            done(lb::run(target, project, command, output).await)
        }
        Command::Net { project, command } => {
            let target =
                rest::Target { endpoints: global.endpoints()?, endpoint: global.endpoint.clone(), ca: global.ca };
            done(net::run(target, project, command, output).await)
        }
        Command::Vm { project, command } => {
            let target =
                rest::Target { endpoints: global.endpoints()?, endpoint: global.endpoint.clone(), ca: global.ca };
            done(vm::run_vm(target, project, command, output).await)
        }
        Command::Image { project, command } => {
            let target =
                rest::Target { endpoints: global.endpoints()?, endpoint: global.endpoint.clone(), ca: global.ca };
            done(vm::run_image(target, project, command, output).await)
        }
        Command::Flavor { project, command } => {
            let target =
                rest::Target { endpoints: global.endpoints()?, endpoint: global.endpoint.clone(), ca: global.ca };
            done(vm::run_flavor(target, project, command, output).await)
        }
        Command::Volume { project, command } => {
            let target =
                rest::Target { endpoints: global.endpoints()?, endpoint: global.endpoint.clone(), ca: global.ca };
            done(volume::run(target, project, command, output).await)
        }
        Command::Status => {
            let (chainfire, ca) = global.resolve("chainfire")?;
            status::run(&global.endpoints()?, &chainfire, ca, output).await
        }
        Command::Node { command } => {
            let (endpoint, ca) = global.resolve("chainfire")?;
            done(nodes::run(&endpoint, ca, command, output).await)
        }
        Command::Firstboot(args) => {
            let local =
                firstboot::Local { host: global.host.clone(), port_offset: global.port_offset, ca: global.ca.clone() };
            done(firstboot::run(args, local).await)
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
