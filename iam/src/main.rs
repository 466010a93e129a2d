//! `iam-server`: the binary. Everything it does is in the library; see `server::build`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use iam::config::{IamConfig, SPEC};
use photon_runtime::cli::FlaredbArgs;
use photon_runtime::CommonArgs;

/// IAM: PhotonCloud's identities, tokens and authorization (stored in flaredb, which must be
/// running first). On first start it creates the administrator `admin`: with the password in
/// --admin-password-file, or a generated one written to <data_dir>/initial-admin-password.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    flaredb: FlaredbArgs,
    /// File holding the first administrator's password (used only when there is none yet).
    #[arg(long, value_name = "FILE")]
    admin_password_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli: Cli = photon_runtime::cli::parse::<Cli, IamConfig>(&SPEC);
    let overrides = photon_runtime::cli::overrides_or_exit(&SPEC, cli.flaredb.overrides());
    let password_file = cli.admin_password_file;
    photon_runtime::run(SPEC, cli.common, overrides, move |config: IamConfig, context| async move {
        Ok(iam::server::build(config, context, password_file).await?)
    })
}
