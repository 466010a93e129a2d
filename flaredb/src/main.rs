//! `flaredb-server`: the binary. Everything it does is in the library; see `server::build`.

use std::process::ExitCode;

use clap::Parser;
use flaredb::config::{FlaredbConfig, SPEC};
use photon_runtime::cli::list_override;
use photon_runtime::cli::{Overrides, RaftArgs};
use photon_runtime::{CommonArgs, ConfigValue};

/// FlareDB: PhotonCloud's range-sharded key-value store (regions as Raft groups, region map in
/// chainfire, which must be running first).
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    raft: RaftArgs,
    /// Join a running cluster: start with no regions and let placement add replicas here
    /// (raft.bootstrap = false).
    #[arg(long)]
    join: bool,
    /// chainfire API URLs, comma-separated (chainfire.endpoints).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    chainfire: Vec<String>,
}

impl Cli {
    fn overrides(&self) -> Result<Overrides, String> {
        let mut out = self.raft.overrides_with(flaredb::cluster_config::overrides)?;
        if self.join {
            out.flags.push(("raft.bootstrap".to_string(), ConfigValue::from(false)));
        }
        out.flags.extend(list_override("chainfire.endpoints", &self.chainfire));
        Ok(out)
    }
}

fn main() -> ExitCode {
    let cli: Cli = photon_runtime::cli::parse::<Cli, FlaredbConfig>(&SPEC);
    let overrides = photon_runtime::cli::overrides_or_exit(&SPEC, cli.overrides());
    photon_runtime::run(SPEC, cli.common, overrides, |config: FlaredbConfig, context| async move {
        Ok(flaredb::server::build(config, context).await?)
    })
}
