//! `prismnet-server`: the binary. Everything it does is in the library; see `server::build`.

use std::process::ExitCode;

use clap::Parser;
use photon_runtime::cli::ChainfireArgs;
use photon_runtime::CommonArgs;
use prismnet::config::{PrismnetConfig, SPEC};

/// PrismNET: PhotonCloud's tenant networks. VPCs, subnets, ports, security groups, routers and
/// floating IPs live in chainfire; the management API on the API port is authorized by IAM;
/// with the dataplane on, this node builds the VPCs its ports need (bridges, VXLAN, nftables).
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    chainfire: ChainfireArgs,
    #[command(flatten)]
    iam: photon_auth::IamArgs,
}

fn main() -> ExitCode {
    let cli: Cli = photon_runtime::cli::parse::<Cli, PrismnetConfig>(&SPEC);
    let mut overrides = photon_runtime::cli::overrides_or_exit(&SPEC, cli.chainfire.overrides());
    cli.iam.apply(&mut overrides);
    photon_runtime::run(SPEC, cli.common, overrides, |config: PrismnetConfig, context| async move {
        Ok(prismnet::server::build(config, context).await?)
    })
}
