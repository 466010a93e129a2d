//! `flashdns-server`: the binary. Everything it does is in the library; see `server::build`.

use std::process::ExitCode;

use clap::Parser;
use flashdns::config::{FlashdnsConfig, SPEC};
use photon_runtime::cli::ChainfireArgs;
use photon_runtime::{CommonArgs, ConfigValue};

/// FlashDNS: PhotonCloud's authoritative DNS server. Zones live in chainfire (it answers from
/// its last copy while chainfire is away); the management API beside DNS over TLS on the API
/// port is authorized by IAM.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    chainfire: ChainfireArgs,
    /// Address for DNS over UDP and TCP (dns.listen).
    #[arg(long, value_name = "ADDR")]
    dns_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    iam: photon_auth::IamArgs,
}

fn main() -> ExitCode {
    let cli: Cli = photon_runtime::cli::parse::<Cli, FlashdnsConfig>(&SPEC);
    let mut overrides = photon_runtime::cli::overrides_or_exit(&SPEC, cli.chainfire.overrides());
    if let Some(listen) = cli.dns_listen {
        overrides.flags.push(("dns.listen".to_string(), ConfigValue::from(listen.to_string())));
    }
    cli.iam.apply(&mut overrides);
    photon_runtime::run(SPEC, cli.common, overrides, |config: FlashdnsConfig, context| async move {
        Ok(flashdns::server::build(config, context).await?)
    })
}
