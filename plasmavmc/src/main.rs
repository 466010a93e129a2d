//! `plasmavmc-server`: the binary. Everything it does is in the library; see `server::build`.

use std::process::ExitCode;

use clap::Parser;
use photon_runtime::cli::ChainfireArgs;
use photon_runtime::CommonArgs;
use plasmavmc::config::{PlasmavmcConfig, SPEC};

/// PlasmaVMC: PhotonCloud's virtual machines. Flavours, images and VMs live in chainfire; the
/// management API on the API port is authorized by IAM; the node holding the scheduler's claim
/// places new VMs; with the agent on, this node runs the VMs placed on it under QEMU (KVM when
/// /dev/kvm works, software emulation otherwise).
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
    let cli: Cli = photon_runtime::cli::parse::<Cli, PlasmavmcConfig>(&SPEC);
    let mut overrides = photon_runtime::cli::overrides_or_exit(&SPEC, cli.chainfire.overrides());
    cli.iam.apply(&mut overrides);
    photon_runtime::run(SPEC, cli.common, overrides, |config: PlasmavmcConfig, context| async move {
        Ok(plasmavmc::server::build(config, context).await?)
    })
}
