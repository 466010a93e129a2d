//! `fiberlb-server`: the binary. Everything it does is in the library; see `server::build`.

use std::process::ExitCode;

use clap::Parser;
use fiberlb::config::{FiberlbConfig, SPEC};
use photon_runtime::cli::ChainfireArgs;
use photon_runtime::CommonArgs;

/// FiberLB: PhotonCloud's load balancer. Tenants' load balancers, listeners, pools, backends,
/// health checks and L7 rules live in chainfire; the management API on the API port is
/// authorized by IAM.
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
    let cli: Cli = photon_runtime::cli::parse::<Cli, FiberlbConfig>(&SPEC);
    let mut overrides = photon_runtime::cli::overrides_or_exit(&SPEC, cli.chainfire.overrides());
    cli.iam.apply(&mut overrides);
    photon_runtime::run(SPEC, cli.common, overrides, |config: FiberlbConfig, context| async move {
        Ok(fiberlb::server::build(config, context).await?)
    })
}
