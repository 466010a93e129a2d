//! `chainfire-server`: the binary. Everything it does is in the library; see `server::build`.

use std::process::ExitCode;

use chainfire::config::{ChainfireConfig, SPEC};
use clap::Parser;
use photon_runtime::{CommonArgs, ConfigValue};

/// Chainfire: PhotonCloud's replicated coordination store, speaking the etcd v3 API.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// This member's id (raft.node_id).
    #[arg(long, value_name = "ID")]
    node_id: Option<u64>,
    /// Peer port address (raft.listen).
    #[arg(long, value_name = "ADDR")]
    raft_listen: Option<std::net::SocketAddr>,
    /// host:port peers reach this member at (raft.advertise).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// cluster-config.json from first-boot automation: sets node id, peers, bootstrap or join,
    /// and certificates. Other flags still win over it.
    #[arg(long, value_name = "FILE")]
    cluster_config: Option<std::path::PathBuf>,
    /// First members as id=host:port, comma-separated, this member included (raft.initial_peers).
    #[arg(long, value_name = "ID=HOST:PORT,...", value_delimiter = ',')]
    initial_peers: Vec<String>,
}

impl Cli {
    fn overrides(&self) -> Result<Vec<(String, ConfigValue)>, String> {
        let mut out = Vec::new();
        if let Some(path) = &self.cluster_config {
            let file = photon_runtime::cluster_config::ClusterConfig::read(path)?;
            out.extend(chainfire::cluster_config::overrides(&file, path)?);
        }
        if let Some(id) = self.node_id {
            out.push(("raft.node_id".to_string(), ConfigValue::from(id)));
        }
        if let Some(addr) = self.raft_listen {
            out.push(("raft.listen".to_string(), ConfigValue::from(addr.to_string())));
        }
        if !self.initial_peers.is_empty() {
            let peers: Vec<ConfigValue> = self.initial_peers.iter().map(|p| ConfigValue::from(p.clone())).collect();
            out.push(("raft.initial_peers".to_string(), ConfigValue::from(peers)));
        }
        if let Some(advertise) = &self.advertise {
            out.push(("raft.advertise".to_string(), ConfigValue::from(advertise.clone())));
        }
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
