//! `photonctl lb`: a project's load balancers in FiberLB — load balancers, listeners, pools,
//! backends and health checks — through its REST API as the saved login, and `lb health`, the
//! live view of a load balancer's backends (`--watch` refreshes it). `plan` maps a command to
//! its one API call, without I/O; `run` sends it and prints the answer.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use crate::dns::{Owner, ProjectArgs};
use crate::resource::{create, execute, send, spec_of, Call, Show};
use crate::rest::Target;
use crate::table::show;
use crate::OutputFormat;

#[derive(Debug, Subcommand)]
pub enum LbCommand {
    /// Create a load balancer (its listeners bind --vip, or every address without one).
    Create {
        name: String,
        #[arg(long, value_name = "IP")]
        vip: Option<String>,
    },
    /// List the project's load balancers.
    Ls,
    /// Delete a load balancer with its listeners, rules, pools, backends and checks.
    Rm { name: String },
    /// Listeners of a load balancer: add, ls, rm.
    Listener {
        #[command(subcommand)]
        command: ListenerCommand,
    },
    /// Pools of a load balancer: add, ls, rm.
    Pool {
        #[command(subcommand)]
        command: PoolCommand,
    },
    /// Backends of a pool: add, ls, set (admin state, weight), rm.
    Backend {
        #[command(subcommand)]
        command: BackendCommand,
    },
    /// Health checks of a pool: add, ls, rm.
    Check {
        #[command(subcommand)]
        command: CheckCommand,
    },
    /// The live state of a load balancer's backends on the fiberlb node asked: up, in flight,
    /// failing checks, ejection.
    Health {
        lb: String,
        /// Refresh every second until interrupted.
        #[arg(long)]
        watch: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ListenerCommand {
    /// Add a listener: --protocol tcp|udp|tls_passthrough|http|https, --port, --pool (the
    /// default pool); https needs --cert and --key (PEM files) for --sni host names.
    Add {
        lb: String,
        name: String,
        #[arg(long)]
        protocol: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        pool: Option<String>,
        #[arg(long, value_name = "PEM")]
        cert: Option<PathBuf>,
        #[arg(long, value_name = "PEM")]
        key: Option<PathBuf>,
        /// Host names the certificate serves to clients asking for them (repeatable).
        #[arg(long = "sni", value_name = "HOST")]
        hosts: Vec<String>,
    },
    Ls { lb: String },
    Rm { lb: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Add a pool: --algorithm round_robin|weighted_round_robin|least_connections|power_of_two|maglev.
    Add {
        lb: String,
        name: String,
        #[arg(long)]
        algorithm: Option<String>,
        /// PROXY protocol toward backends: v1 or v2.
        #[arg(long)]
        proxy_protocol: Option<String>,
        /// What HTTP listeners speak to the backends: http1 (default) or http2 (h2c; gRPC).
        #[arg(long)]
        backend_protocol: Option<String>,
    },
    Ls { lb: String },
    Rm { lb: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// Add a backend at ADDRESS:PORT.
    Add {
        lb: String,
        pool: String,
        name: String,
        address: std::net::SocketAddr,
        #[arg(long)]
        weight: Option<u32>,
    },
    Ls { lb: String, pool: String },
    /// Change a backend: --state enabled|drain|disabled, --weight.
    Set {
        lb: String,
        pool: String,
        name: String,
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        weight: Option<u32>,
    },
    Rm { lb: String, pool: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Add a check: --probe tcp|http|https, --path for HTTP(S), --interval-ms, --rise, --fall.
    Add {
        lb: String,
        pool: String,
        name: String,
        #[arg(long)]
        probe: String,
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        interval_ms: Option<u64>,
        #[arg(long)]
        rise: Option<u32>,
        #[arg(long)]
        fall: Option<u32>,
    },
    Ls { lb: String, pool: String },
    Rm { lb: String, pool: String, name: String },
}

const LB_COLUMNS: &[&str] = &["name", "vip", "created_at"];
const LISTENER_COLUMNS: &[&str] = &["name", "protocol", "port", "default_pool"];
const POOL_COLUMNS: &[&str] = &["name", "algorithm", "proxy_protocol", "backend_protocol"];
const BACKEND_COLUMNS: &[&str] = &["name", "address", "port", "weight", "admin_state"];
const CHECK_COLUMNS: &[&str] = &["name", "probe", "path", "interval_ms", "rise", "fall"];
const HEALTH_COLUMNS: &[&str] = &["pool", "backend", "address", "admin_state", "up", "active", "failing_checks", "ejected_for_ms"];

/// The API call `command` makes for `owner` (certificate files already read into `pem`).
pub fn plan(command: &LbCommand, owner: &Owner, pem: Option<(String, String)>) -> Call {
    let segment = photon_auth::sigv4::encode;
    let base = format!("/api/v1/orgs/{}/projects/{}/loadbalancers", segment(&owner.org), segment(&owner.project));
    let lb = |name: &str| format!("{base}/{}", segment(name));
    let pool = |l: &str, p: &str| format!("{}/pools/{}", lb(l), segment(p));
    let call = Call::new;
    match command {
        LbCommand::Create { name, vip } => {
            call(Method::POST, base.clone(), create(name, spec_of(&[("vip", vip.clone().map(Value::from))])), Show::Rows(LB_COLUMNS))
        }
        LbCommand::Ls => call(Method::GET, base.clone(), None, Show::Rows(LB_COLUMNS)),
        LbCommand::Rm { name } => call(Method::DELETE, lb(name), None, Show::Done(format!("deleted load balancer {name}"))),
        LbCommand::Health { lb: name, .. } => call(Method::GET, format!("{}/health", lb(name)), None, Show::Custom),
        LbCommand::Listener { command } => match command {
            ListenerCommand::Add { lb: l, name, protocol, port, pool: default_pool, hosts, .. } => {
                let certificates = pem.map(|(cert, key)| json!([{ "hosts": hosts, "certificate_pem": cert, "private_key_pem": key }]));
                let spec = spec_of(&[
                    ("protocol", Some(json!(protocol))),
                    ("port", Some(json!(port))),
                    ("default_pool", default_pool.clone().map(Value::from)),
                    ("certificates", certificates),
                ]);
                call(Method::POST, format!("{}/listeners", lb(l)), create(name, spec), Show::Rows(LISTENER_COLUMNS))
            }
            ListenerCommand::Ls { lb: l } => call(Method::GET, format!("{}/listeners", lb(l)), None, Show::Rows(LISTENER_COLUMNS)),
            ListenerCommand::Rm { lb: l, name } => call(
                Method::DELETE,
                format!("{}/listeners/{}", lb(l), segment(name)),
                None,
                Show::Done(format!("deleted listener {name} of {l}")),
            ),
        },
        LbCommand::Pool { command } => match command {
            PoolCommand::Add { lb: l, name, algorithm, proxy_protocol, backend_protocol } => {
                let spec = spec_of(&[
                    ("algorithm", algorithm.clone().map(Value::from)),
                    ("proxy_protocol", proxy_protocol.clone().map(Value::from)),
                    ("backend_protocol", backend_protocol.clone().map(Value::from)),
                ]);
                call(Method::POST, format!("{}/pools", lb(l)), create(name, spec), Show::Rows(POOL_COLUMNS))
            }
            PoolCommand::Ls { lb: l } => call(Method::GET, format!("{}/pools", lb(l)), None, Show::Rows(POOL_COLUMNS)),
            PoolCommand::Rm { lb: l, name } => {
                call(Method::DELETE, pool(l, name), None, Show::Done(format!("deleted pool {name} of {l}")))
            }
        },
        LbCommand::Backend { command } => match command {
            BackendCommand::Add { lb: l, pool: p, name, address, weight } => {
                let spec = spec_of(&[
                    ("address", Some(json!(address.ip().to_string()))),
                    ("port", Some(json!(address.port()))),
                    ("weight", weight.map(Value::from)),
                ]);
                call(Method::POST, format!("{}/backends", pool(l, p)), create(name, spec), Show::Rows(BACKEND_COLUMNS))
            }
            BackendCommand::Ls { lb: l, pool: p } => {
                call(Method::GET, format!("{}/backends", pool(l, p)), None, Show::Rows(BACKEND_COLUMNS))
            }
            BackendCommand::Set { lb: l, pool: p, name, state, weight } => {
                let changes = spec_of(&[("admin_state", state.clone().map(Value::from)), ("weight", weight.map(Value::from))]);
                call(Method::PUT, format!("{}/backends/{}", pool(l, p), segment(name)), Some(changes), Show::Modify(BACKEND_COLUMNS))
            }
            BackendCommand::Rm { lb: l, pool: p, name } => call(
                Method::DELETE,
                format!("{}/backends/{}", pool(l, p), segment(name)),
                None,
                Show::Done(format!("deleted backend {name} of {p}")),
            ),
        },
        LbCommand::Check { command } => match command {
            CheckCommand::Add { lb: l, pool: p, name, probe, path, interval_ms, rise, fall } => {
                let spec = spec_of(&[
                    ("probe", Some(json!(probe))),
                    ("path", path.clone().map(Value::from)),
                    ("interval_ms", interval_ms.map(Value::from)),
                    ("rise", rise.map(Value::from)),
                    ("fall", fall.map(Value::from)),
                ]);
                call(Method::POST, format!("{}/healthchecks", pool(l, p)), create(name, spec), Show::Rows(CHECK_COLUMNS))
            }
            CheckCommand::Ls { lb: l, pool: p } => {
                call(Method::GET, format!("{}/healthchecks", pool(l, p)), None, Show::Rows(CHECK_COLUMNS))
            }
            CheckCommand::Rm { lb: l, pool: p, name } => call(
                Method::DELETE,
                format!("{}/healthchecks/{}", pool(l, p), segment(name)),
                None,
                Show::Done(format!("deleted health check {name} of {p}")),
            ),
        },
    }
}

pub async fn run(target: Target, args: ProjectArgs, command: LbCommand, output: OutputFormat) -> anyhow::Result<()> {
    let (rest, owner) = crate::rest::session(target, &args, "fiberlb").await?;
    let pem = match &command {
        LbCommand::Listener { command: ListenerCommand::Add { cert: Some(cert), key: Some(key), .. } } => Some((
            std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?,
            std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?,
        )),
        LbCommand::Listener { command: ListenerCommand::Add { cert: Some(_), key: None, .. } | ListenerCommand::Add { cert: None, key: Some(_), .. } } => {
            bail!("--cert and --key go together")
        }
        _ => None,
    };
    let call = plan(&command, &owner, pem);
    if call.show != Show::Custom {
        return execute(&rest, "fiberlb", call, output).await;
    }
    let watch = matches!(command, LbCommand::Health { watch: true, .. });
    loop {
        let doc = send(&rest, "fiberlb", Method::GET, &call.path, None).await?.json()?;
        let rows = doc["backends"].as_array().cloned().unwrap_or_default();
        if watch && output == OutputFormat::Table {
            print!("\x1b[2J\x1b[H");
        }
        show(output, &doc, &rows, HEALTH_COLUMNS);
        if !watch {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Line {
        #[command(subcommand)]
        command: LbCommand,
    }

    fn planned(args: &[&str]) -> Call {
        let line = Line::try_parse_from(std::iter::once("lb").chain(args.iter().copied())).unwrap();
        plan(&line.command, &Owner { org: "acme".into(), project: "web".into() }, None)
    }

    const LBS: &str = "/api/v1/orgs/acme/projects/web/loadbalancers";

    #[test]
    fn commands_map_to_the_kinds_routes() {
        let create = planned(&["create", "front", "--vip", "10.0.0.10"]);
        assert_eq!((create.method, create.path.as_str()), (Method::POST, LBS));
        assert_eq!(create.body, Some(json!({"name": "front", "spec": {"vip": "10.0.0.10"}})));
        let listener = planned(&["listener", "add", "front", "web", "--protocol", "http", "--port", "80", "--pool", "app"]);
        assert_eq!(listener.path, format!("{LBS}/front/listeners"));
        assert_eq!(listener.body, Some(json!({"name": "web", "spec": {"protocol": "http", "port": 80, "default_pool": "app"}})));
        let backend = planned(&["backend", "add", "front", "app", "b1", "10.0.0.5:8080", "--weight", "3"]);
        assert_eq!(backend.path, format!("{LBS}/front/pools/app/backends"));
        assert_eq!(backend.body, Some(json!({"name": "b1", "spec": {"address": "10.0.0.5", "port": 8080, "weight": 3}})));
        let drain = planned(&["backend", "set", "front", "app", "b1", "--state", "drain"]);
        assert_eq!((drain.method, drain.path.as_str(), drain.show), (Method::PUT, &*format!("{LBS}/front/pools/app/backends/b1"), Show::Modify(BACKEND_COLUMNS)));
        assert_eq!(drain.body, Some(json!({"admin_state": "drain"})));
        let health = planned(&["health", "front", "--watch"]);
        assert_eq!((health.method, health.path.as_str()), (Method::GET, &*format!("{LBS}/front/health")));
        let rm = planned(&["rm", "front"]);
        assert_eq!((rm.method, rm.path.as_str()), (Method::DELETE, &*format!("{LBS}/front")));
    }
}
