//! `flaredb-server`: the binary. Everything it does is in the library; see `server::build`.

use std::process::ExitCode;

use clap::Parser;
use flaredb::config::{FlaredbConfig, SPEC};
use photon_runtime::{CommonArgs, ConfigValue};

/// FlareDB: PhotonCloud's range-sharded key-value store (regions as Raft groups, region map in
/// chainfire, which must be running first).
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// This store's id (raft.node_id).
    #[arg(long, value_name = "ID")]
    node_id: Option<u64>,
    /// Peer port address (raft.listen).
    #[arg(long, value_name = "ADDR")]
    raft_listen: Option<std::net::SocketAddr>,
    /// host:port peers reach this store at (raft.advertise).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// First stores as id=host:port, comma-separated, this store included (raft.initial_peers).
    #[arg(long, value_name = "ID=HOST:PORT,...", value_delimiter = ',')]
    initial_peers: Vec<String>,
    /// Join a running cluster: start with no regions and let placement add replicas here
    /// (raft.bootstrap = false).
    #[arg(long)]
    join: bool,
    /// cluster-config.json from first-boot automation: sets store id and peers (flaredb_peers),
    /// bootstrap or join, chainfire endpoints and certificates. Other flags still win over it.
    #[arg(long, value_name = "FILE")]
    cluster_config: Option<std::path::PathBuf>,
    /// chainfire API URLs, comma-separated (chainfire.endpoints).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    chainfire: Vec<String>,
}

impl Cli {
    fn overrides(&self) -> Result<Vec<(String, ConfigValue)>, String> {
        let mut out = Vec::new();
        if let Some(path) = &self.cluster_config {
            let file = photon_runtime::cluster_config::ClusterConfig::read(path)?;
            out.extend(flaredb::cluster_config::overrides(&file, path)?);
        }
        if let Some(id) = self.node_id {
            out.push(("raft.node_id".to_string(), ConfigValue::from(id)));
        }
        if let Some(addr) = self.raft_listen {
            out.push(("raft.listen".to_string(), ConfigValue::from(addr.to_string())));
        }
        if let Some(advertise) = &self.advertise {
            out.push(("raft.advertise".to_string(), ConfigValue::from(advertise.clone())));
        }
        let list = |items: &[String]| {
            ConfigValue::from(items.iter().map(|p| ConfigValue::from(p.clone())).collect::<Vec<_>>())
        };
        if !self.initial_peers.is_empty() {
            out.push(("raft.initial_peers".to_string(), list(&self.initial_peers)));
        }
        if self.join {
            out.push(("raft.bootstrap".to_string(), ConfigValue::from(false)));
        }
        if !self.chainfire.is_empty() {
            out.push(("chainfire.endpoints".to_string(), list(&self.chainfire)));
        }
        Ok(out)
    }
}

fn main() -> ExitCode {
    let cli: Cli = photon_runtime::cli::parse::<Cli, FlaredbConfig>(&SPEC);
    let overrides = match cli.overrides() {
        Ok(overrides) => overrides,
        Err(e) => {
            eprintln!("flaredb-server: {e}");
            return ExitCode::from(2);
        }
    };
    photon_runtime::run(SPEC, cli.common, overrides, |config: FlaredbConfig, context| async move {
        Ok(flaredb::server::build(config, context).await?)
    })
}
