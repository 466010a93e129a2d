//! `chainfire-server`: the binary. Everything it does is in the library; see `server::build`.

use std::process::ExitCode;

use chainfire::config::{ChainfireConfig, SPEC};
use clap::Parser;
use photon_runtime::cli::RaftArgs;
use photon_runtime::CommonArgs;

/// Chainfire: PhotonCloud's replicated coordination store, speaking the etcd v3 API.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    raft: RaftArgs,
}

fn main() -> ExitCode {
    let cli: Cli = photon_runtime::cli::parse::<Cli, ChainfireConfig>(&SPEC);
    let overrides =
        photon_runtime::cli::overrides_or_exit(&SPEC, cli.raft.overrides_with(chainfire::cluster_config::overrides));
    photon_runtime::run(SPEC, cli.common, overrides, |config: ChainfireConfig, context| async move {
        Ok(chainfire::server::build(config, context).await?)
    })
}
