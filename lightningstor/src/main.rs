//! `lightningstor-server`: the binary. Everything it does is in the library; see `server::build`.

use std::process::ExitCode;

use clap::Parser;
use lightningstor::config::{LightningstorConfig, SPEC};
use photon_runtime::cli::{ChainfireArgs, FlaredbArgs};
use photon_runtime::cluster_config::ClusterConfig;
use photon_runtime::{CommonArgs, ConfigValue};

/// LightningStor: PhotonCloud's S3-compatible object storage (metadata in flaredb, access keys
/// and decisions from IAM; both must be running) and block volumes (kept in chainfire, served
/// over NBD).
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    flaredb: FlaredbArgs,
    #[command(flatten)]
    iam: photon_auth::IamArgs,
    /// The S3 port's address (s3.listen).
    #[arg(long, value_name = "ADDR")]
    s3_listen: Option<std::net::SocketAddr>,
    /// chainfire API URLs, comma-separated, where volumes are kept (chainfire.endpoints;
    /// `--cluster-config` sets them too).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    chainfire: Vec<String>,
}

fn main() -> ExitCode {
    let cli: Cli = photon_runtime::cli::parse::<Cli, LightningstorConfig>(&SPEC);
    let mut overrides = photon_runtime::cli::overrides_or_exit(&SPEC, cli.flaredb.overrides());
    let chainfire = ChainfireArgs { chainfire: cli.chainfire.clone(), cluster_config: cli.flaredb.cluster_config.clone() };
    let chainfire = photon_runtime::cli::overrides_or_exit(&SPEC, chainfire.overrides());
    overrides.cluster_config.extend(chainfire.cluster_config);
    overrides.flags.extend(chainfire.flags);
    // The node's id in the cluster names its replicas too.
    if let Some(path) = &cli.flaredb.cluster_config {
        let cluster = photon_runtime::cli::overrides_or_exit(&SPEC, ClusterConfig::read(path));
        overrides.cluster_config.push(("replication.node_id".to_string(), ConfigValue::from(cluster.node_id)));
    }
    cli.iam.apply(&mut overrides);
    if let Some(listen) = cli.s3_listen {
        overrides.flags.push(("s3.listen".to_string(), ConfigValue::from(listen.to_string())));
    }
    photon_runtime::run(SPEC, cli.common, overrides, |config: LightningstorConfig, context| async move {
        Ok(lightningstor::server::build(config, context).await?)
    })
}
