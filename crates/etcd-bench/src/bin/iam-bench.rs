//! `iam-bench`: IAM's Authorize and ValidateToken throughput and latency over gRPC, next to
//! a no-op call (`Authz.Ping`) on the same server in the same run, plus the token issue rate
//! (argon2id password checks). Prints one JSON summary per workload.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use etcd_bench::stats::summary;
use photon_api::iam::v1 as pb;
use photon_api::iam::v1::admin_client::AdminClient;
use photon_api::iam::v1::authz_client::AuthzClient;
use photon_api::iam::v1::tokens_client::TokensClient;
use tonic::transport::Channel;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks IAM's Authorize and ValidateToken against a no-op gRPC call on the same server")]
struct Args {
    /// IAM's API URL.
    #[arg(long)]
    endpoint: String,
    /// CA certificate to trust.
    #[arg(long)]
    cacert: Option<std::path::PathBuf>,
    /// The administrator's password (user `admin`), to set up the benchmark's principal.
    #[arg(long)]
    admin_password: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Connections the clients share.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent logins for the issue-rate workload (each is an argon2id check).
    #[arg(long, default_value_t = 4)]
    login_clients: usize,
}

fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

async fn login(channel: &Channel, user: &str, password: &str) -> anyhow::Result<String> {
    let credentials = pb::issue_token_request::Credentials::Password(pb::PasswordCredentials {
        user: user.into(),
        password: password.into(),
    });
    let answer = TokensClient::new(channel.clone())
        .issue_token(pb::IssueTokenRequest { credentials: Some(credentials) })
        .await?;
    Ok(answer.into_inner().access_token)
}

/// An org, a project and a user bound `member` on the project: the principal Authorize is
/// asked about. Idempotent (a re-run reuses them).
async fn prepare(channel: &Channel, admin_password: &str) -> anyhow::Result<String> {
    let root = login(channel, "admin", admin_password).await?;
    let mut admin = AdminClient::new(channel.clone());
    let ok_or_exists = |r: Result<(), tonic::Status>| match r {
        Err(s) if s.code() != tonic::Code::AlreadyExists => Err(anyhow::anyhow!("setting up: {}", s.message())),
        _ => Ok(()),
    };
    ok_or_exists(
        admin
            .create_org(bearer(&root, pb::CreateOrgRequest { name: "bench".into(), display_name: String::new() }))
            .await
            .map(|_| ()),
    )?;
    let project = pb::CreateProjectRequest { org: "bench".into(), name: "p".into(), display_name: String::new() };
    ok_or_exists(admin.create_project(bearer(&root, project)).await.map(|_| ()))?;
    let user = pb::CreateUserRequest {
        org: "bench".into(),
        name: "bench-user".into(),
        display_name: String::new(),
        password: "bench-user-password".into(),
    };
    if admin.create_user(bearer(&root, user)).await.is_ok() {
        let binding = pb::CreateBindingRequest {
            scope: "orgs/bench/projects/p".into(),
            principal: "user:bench-user".into(),
            role: "member".into(),
            ..Default::default()
        };
        admin.create_binding(bearer(&root, binding)).await?;
    }
    login(channel, "bench-user", "bench-user-password").await
}

#[derive(Clone, Copy)]
enum Workload {
    Ping,
    Authorize,
    Validate,
    Issue,
}

async fn call(workload: Workload, channel: &Channel, token: &str) -> Result<(), tonic::Status> {
    match workload {
        Workload::Ping => AuthzClient::new(channel.clone()).ping(bearer(token, pb::Empty {})).await.map(|_| ()),
        Workload::Authorize => {
            let request = pb::AuthorizeRequest {
                principal: String::new(),
                action: "plasmavmc:instances:get".into(),
                resource: "orgs/bench/projects/p/instances/vm1".into(),
                context: None,
            };
            let answer = AuthzClient::new(channel.clone()).authorize(bearer(token, request)).await?.into_inner();
            if answer.allowed {
                Ok(())
            } else {
                Err(tonic::Status::permission_denied(answer.reason))
            }
        }
        Workload::Validate => TokensClient::new(channel.clone())
            .validate_token(pb::ValidateTokenRequest { token: token.to_string() })
            .await
            .map(|_| ()),
        Workload::Issue => login(channel, "bench-user", "bench-user-password")
            .await
            .map(|_| ())
            .map_err(|e| tonic::Status::unknown(e.to_string())),
    }
}

async fn run(
    name: &str,
    workload: Workload,
    channels: &[Channel],
    token: &str,
    clients: usize,
    seconds: u64,
) -> serde_json::Value {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (channel, token, stop, errors) =
                (channels[i % channels.len()].clone(), token.to_string(), stop.clone(), errors.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match call(workload, &channel, &token).await {
                        Ok(()) => samples.push(t.elapsed()),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                samples
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.unwrap_or_default());
    }
    summary(name, &mut samples, started.elapsed(), errors.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = photon_client::ChannelOptions { ca: args.cacert.clone(), ..Default::default() };
    let channels: Vec<Channel> = (0..args.connections.max(1))
        .map(|_| photon_client::lazy_channel(&args.endpoint, &options))
        .collect::<Result<_, _>>()?;
    let token = prepare(&channels[0], &args.admin_password).await?;
    // Warm every connection before measuring.
    for channel in &channels {
        call(Workload::Ping, channel, &token).await?;
    }
    for (name, workload, clients) in [
        ("ping", Workload::Ping, args.clients),
        ("authorize", Workload::Authorize, args.clients),
        ("validate", Workload::Validate, args.clients),
        ("issue", Workload::Issue, args.login_clients),
    ] {
        let result = run(name, workload, &channels, &token, clients, args.seconds).await;
        println!("{result}");
    }
    Ok(())
}
