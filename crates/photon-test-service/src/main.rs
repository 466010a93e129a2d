//! `photon-test-service`: a small service built on photon-runtime, standing in for a real
//! `<service>-server` in the runtime's and photonctl's tests. Its `[test]` section scripts
//! behaviour a test needs to provoke: a given health status, a crash, a start-order record.
//! It is a test fixture: no PhotonCloud node runs it.

mod behaviour;
mod config;
mod routes;

use std::process::ExitCode;

use clap::Parser;
use photon_runtime::{Api, CommonArgs, ConfigValue, ServiceSpec};

use photon_api::testing::v1::demo_server::DemoServer;

use crate::config::TestServiceConfig;

const SPEC: ServiceSpec = ServiceSpec {
    name: "photon-test-service",
    env_prefix: "PHOTON_TEST",
    default_port: 7999,
    version: env!("CARGO_PKG_VERSION"),
};

/// A stand-in PhotonCloud service for tests.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// Name this instance reports and records, e.g. chainfire (test.name).
    #[arg(long)]
    name: Option<String>,
}

fn main() -> ExitCode {
    let cli: Cli = photon_runtime::cli::parse::<Cli, TestServiceConfig>(&SPEC);
    let extra: Vec<(String, ConfigValue)> =
        cli.name.map(|n| ("test.name".to_string(), ConfigValue::from(n))).into_iter().collect();
    photon_runtime::run(SPEC, cli.common, extra, |config: TestServiceConfig, context| async move {
        let behaviour = behaviour::Behaviour::start(&config, &context)?;
        let health = behaviour.health_check();
        if let Some(listen) = config.test.extra_listen {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let tls = if config.test.extra_plaintext { None } else { context.tls.config.clone() };
            let drain = std::time::Duration::from_secs(config.server.shutdown_timeout_secs);
            let serving = photon_runtime::serve_port(listener, tls, routes::router(), context.shutdown.clone(), drain);
            context.tasks.spawn(serving);
        }
        let api = Api::new(health).http(routes::router()).grpc(DemoServer::new(routes::Demo));
        if config.auth.iam_url.is_empty() {
            return Ok(api);
        }
        let mut auth = photon_auth::AuthConfig::new(config.auth.iam_url.clone());
        auth.ca = config.auth.ca.clone().or_else(|| context.tls.trust.clone());
        auth.decision_ttl = std::time::Duration::from_millis(config.auth.decision_ttl_ms);
        let client = std::sync::Arc::new(photon_auth::AuthClient::new(auth).map_err(anyhow::Error::msg)?);
        let guard = photon_auth::Guard::new(client, routes::rules());
        Ok(api.guard(move |router| guard.apply(router)))
    })
}
