//! The command-line flags every `<service>-server` shares, and how they become config overrides.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::value::Value;

use crate::config::{config_help, LogFormat, Mode, ServiceConfig, ServiceSpec};

/// Flags common to all services. A service's own `clap::Parser` embeds this with
/// `#[command(flatten)]`. Each flag overrides the config key named in its help.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    /// TOML config file; keys it leaves out keep their defaults. Also read from <PREFIX>_CONFIG.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// API listen address (server.listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// State directory (server.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// development or production (server.mode).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Log filter, e.g. info or debug,hyper=info (log.level).
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// auto, text or json (log.format).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// PEM certificate chain for the API port (tls.cert).
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert (tls.key).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA bundle (tls.client_ca).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Directory of the shared development CA (tls.dev_ca_dir).
    #[arg(long, value_name = "DIR")]
    pub dev_ca_dir: Option<PathBuf>,
    /// Serve plaintext instead of TLS (tls.insecure).
    #[arg(long)]
    pub insecure: bool,
    /// Print the merged configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl CommonArgs {
    /// The config file to read: the flag, else `<PREFIX>_CONFIG` from `env`.
    pub fn config_file(&self, spec: &ServiceSpec, env: &[(String, String)]) -> Option<PathBuf> {
        let from_env = || env.iter().find(|(k, _)| *k == spec.config_env()).map(|(_, v)| PathBuf::from(v));
        self.config.clone().or_else(from_env)
    }

    /// The `(key path, value)` pairs these flags set.
    pub fn overrides(&self) -> Vec<(String, Value)> {
        fn path(p: &std::path::Path) -> Value {
            Value::from(p.display().to_string())
        }
        let mut out: Vec<(String, Value)> = Vec::new();
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                out.push((key.to_string(), v));
            }
        };
        set("server.listen", self.listen.map(|a| Value::from(a.to_string())));
        set("server.data_dir", self.data_dir.as_deref().map(path));
        set("server.mode", self.mode.map(|m| Value::from(format!("{m:?}").to_lowercase())));
        set("log.level", self.log_level.clone().map(Value::from));
        set("log.format", self.log_format.map(|f| Value::from(format!("{f:?}").to_lowercase())));
        set("tls.cert", self.tls_cert.as_deref().map(path));
        set("tls.key", self.tls_key.as_deref().map(path));
        set("tls.client_ca", self.tls_client_ca.as_deref().map(path));
        set("tls.dev_ca_dir", self.dev_ca_dir.as_deref().map(path));
        set("tls.insecure", self.insecure.then(|| Value::from(true)));
        out
    }
}

/// Parses the command line of a service binary whose `--help` ends with the full config
/// reference of `C`. Exits with clap's usual codes on `--help` or a usage error.
pub fn parse<P: clap::Parser, C: ServiceConfig>(spec: &ServiceSpec) -> P {
    let command = P::command()
        .name(format!("{}-server", spec.name))
        .version(spec.version)
        .after_long_help(config_help::<C>(spec));
    let matches = command.get_matches();
    P::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Flags of a service that runs Raft (`[raft]` keys), for a service's `clap::Parser` to embed
/// with `#[command(flatten)]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RaftArgs {
    /// This member's id (raft.node_id).
    #[arg(long, value_name = "ID")]
    pub node_id: Option<u64>,
    /// Peer port address (raft.listen).
    #[arg(long, value_name = "ADDR")]
    pub raft_listen: Option<std::net::SocketAddr>,
    /// host:port peers reach this member at (raft.advertise).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// First members as id=host:port, comma-separated, this member included (raft.initial_peers).
    #[arg(long, value_name = "ID=HOST:PORT,...", value_delimiter = ',')]
    pub initial_peers: Vec<String>,
    /// cluster-config.json from first-boot automation: sets id, peers, bootstrap or join, and
    /// certificates. Other flags still win over it.
    #[arg(long, value_name = "FILE")]
    pub cluster_config: Option<PathBuf>,
}

/// `--flaredb` and `--cluster-config`, for services that keep their records in flaredb (their
/// `[flaredb]` section).
#[derive(Debug, Clone, clap::Args)]
pub struct FlaredbArgs {
    /// flaredb API URLs, comma-separated (flaredb.endpoints).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub flaredb: Vec<String>,
    /// cluster-config.json from first-boot automation: sets flaredb.endpoints (every store of
    /// flaredb_peers, this node's first), flaredb.ca and the certificates. Flags still win.
    #[arg(long, value_name = "FILE")]
    pub cluster_config: Option<PathBuf>,
}

impl FlaredbArgs {
    /// The overrides `--cluster-config` and the flag set.
    pub fn overrides(&self) -> Result<Overrides, String> {
        let cluster_config = match &self.cluster_config {
            Some(path) => {
                let cluster = crate::cluster_config::ClusterConfig::read(path)?;
                let mut out = cluster.tls_overrides(path, "flaredb.ca");
                let endpoints = cluster.api_urls(&cluster.flaredb_peers, crate::cluster_config::FLAREDB_PORT);
                out.extend(list_override("flaredb.endpoints", &endpoints));
                out
            }
            None => Vec::new(),
        };
        Ok(Overrides { cluster_config, flags: list_override("flaredb.endpoints", &self.flaredb).into_iter().collect() })
    }
}

/// Flags of a service that keeps its state in chainfire (`[chainfire]` keys), for a service's
/// `clap::Parser` to embed with `#[command(flatten)]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChainfireArgs {
    /// chainfire API URLs, comma-separated (chainfire.endpoints).
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    pub chainfire: Vec<String>,
    /// cluster-config.json from first-boot automation: sets chainfire.endpoints (every member
    /// of initial_peers, this node's first), chainfire.ca and the certificates. Flags still win.
    #[arg(long, value_name = "FILE")]
    pub cluster_config: Option<PathBuf>,
}

impl ChainfireArgs {
    pub fn overrides(&self) -> Result<Overrides, String> {
        let cluster_config = match &self.cluster_config {
            Some(path) => {
                let cluster = crate::cluster_config::ClusterConfig::read(path)?;
                let mut out = cluster.tls_overrides(path, "chainfire.ca");
                let endpoints = cluster.api_urls(&cluster.initial_peers, crate::cluster_config::CHAINFIRE_PORT);
                out.extend(list_override("chainfire.endpoints", &endpoints));
                out
            }
            None => Vec::new(),
        };
        Ok(Overrides {
            cluster_config,
            flags: list_override("chainfire.endpoints", &self.chainfire).into_iter().collect(),
        })
    }
}

/// The override a list flag (`--flaredb A,B`) sets on `key`; none when the flag was not given.
pub fn list_override(key: &str, values: &[String]) -> Option<(String, crate::ConfigValue)> {
    let values: Vec<crate::ConfigValue> = values.iter().map(|v| crate::ConfigValue::from(v.clone())).collect();
    (!values.is_empty()).then(|| (key.to_string(), crate::ConfigValue::from(values)))
}

/// The config keys a binary sets beyond the common flags: from `--cluster-config` (below the
/// environment) and from its own flags (above it).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub cluster_config: Vec<(String, crate::ConfigValue)>,
    pub flags: Vec<(String, crate::ConfigValue)>,
}

impl From<Vec<(String, crate::ConfigValue)>> for Overrides {
    fn from(flags: Vec<(String, crate::ConfigValue)>) -> Self {
        Self { cluster_config: Vec::new(), flags }
    }
}

/// What a binary's own flags and `--cluster-config` override, or why they cannot (which exits 2
/// naming the binary, like a configuration error).
pub fn overrides_or_exit<T>(spec: &ServiceSpec, overrides: Result<T, String>) -> T {
    overrides.unwrap_or_else(|e| {
        eprintln!("{}-server: {e}", spec.name);
        std::process::exit(2)
    })
}

impl RaftArgs {
    /// The overrides `--cluster-config` sets (mapped to the service's keys by `map`) and those
    /// of these flags.
    pub fn overrides_with(
        &self,
        map: impl Fn(
            &crate::cluster_config::ClusterConfig,
            &std::path::Path,
        ) -> Result<Vec<(String, crate::ConfigValue)>, String>,
    ) -> Result<Overrides, String> {
        let cluster_config = match &self.cluster_config {
            Some(path) => map(&crate::cluster_config::ClusterConfig::read(path)?, path)?,
            None => Vec::new(),
        };
        Ok(Overrides { cluster_config, flags: self.overrides() })
    }

    /// The `[raft]` overrides these flags set (not `--cluster-config`, which the service maps).
    pub fn overrides(&self) -> Vec<(String, crate::ConfigValue)> {
        use crate::ConfigValue;
        let mut out = Vec::new();
        if let Some(id) = self.node_id {
            out.push(("raft.node_id".to_string(), ConfigValue::from(id)));
        }
        if let Some(addr) = self.raft_listen {
            out.push(("raft.listen".to_string(), ConfigValue::from(addr.to_string())));
        }
        if let Some(advertise) = &self.advertise {
            out.push(("raft.advertise".to_string(), ConfigValue::from(advertise.clone())));
        }
        if !self.initial_peers.is_empty() {
            let peers: Vec<ConfigValue> = self.initial_peers.iter().map(|p| ConfigValue::from(p.clone())).collect();
            out.push(("raft.initial_peers".to_string(), ConfigValue::from(peers)));
        }
        out
    }
}
