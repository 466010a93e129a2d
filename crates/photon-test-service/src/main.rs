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
        Ok(Api::new(health).http(routes::router()))
    })
}
