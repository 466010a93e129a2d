//! `chainfire-server`: the binary. Everything it does is in the library; see `server::build`.

use std::process::ExitCode;

use chainfire::config::{ChainfireConfig, SPEC};
use clap::Parser;
use photon_runtime::cli::RaftArgs;
use photon_runtime::{CommonArgs, ConfigValue};

/// Chainfire: PhotonCloud's replicated coordination store, speaking the etcd v3 API.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    raft: RaftArgs,
}

impl Cli {
    fn overrides(&self) -> Result<Vec<(String, ConfigValue)>, String> {
        let mut out = Vec::new();
        if let Some(path) = &self.raft.cluster_config {
            let file = photon_runtime::cluster_config::ClusterConfig::read(path)?;
            out.extend(chainfire::cluster_config::overrides(&file, path)?);
        }
        out.extend(self.raft.overrides());
        Ok(out)
    }
}

fn main() -> ExitCode {
    let cli: Cli = photon_runtime::cli::parse::<Cli, ChainfireConfig>(&SPEC);
    let overrides = match cli.overrides() {
        Ok(overrides) => overrides,
        Err(e) => {
            eprintln!("chainfire-server: {e}");
            return ExitCode::from(2);
        }
    };
    photon_runtime::run(SPEC, cli.common, overrides, |config: ChainfireConfig, context| async move {
        Ok(chainfire::server::build(config, context).await?)
    })
}
