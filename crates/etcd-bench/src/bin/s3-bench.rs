//! `s3-bench`: a PUT/GET/LIST/DELETE load driver for any S3 endpoint (LightningStor, Garage),
//! objects of the sizes asked for at each concurrency, plus the same bytes written (fsynced)
//! and read on the raw disk as the physical limit. Prints one JSON summary per (system, size,
//! concurrency, operation). `lightningstor-key` makes the access key it runs with.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use etcd_bench::stats::summary;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use photon_api::iam::v1 as pb;
use photon_api::iam::v1::admin_client::AdminClient;
use photon_api::iam::v1::tokens_client::TokensClient;
use photon_s3::{empty, S3Client};

#[derive(Debug, Parser)]
#[command(about = "S3 load driver: PUT/GET/LIST/DELETE by object size and concurrency, and the raw disk")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Load {
    /// Object sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4096,1048576,67108864")]
    sizes: Vec<usize>,
    /// Concurrent clients, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    concurrency: Vec<usize>,
    /// Seconds per PUT phase (longer if needed to write one LIST page of keys); GET reads each
    /// object PUT wrote once (from the disk with `--drop-caches`), LIST and DELETE go over them too.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Seconds per LIST phase.
    #[arg(long, default_value_t = 3)]
    list_seconds: u64,
    /// At most this many bytes written per (size, concurrency), to bound disk use.
    #[arg(long, default_value_t = 2 << 30)]
    max_bytes: u64,
    /// The system's name in the output.
    #[arg(long)]
    label: String,
    /// Empty the page cache before each GET phase (root), so reads come from the disk for
    /// every system alike.
    #[arg(long)]
    drop_caches: bool,
}

/// Writes dirty pages back and empties the page cache, if asked (and allowed).
fn drop_caches(load: &Load) {
    if !load.drop_caches {
        return;
    }
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    if let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", "3") {
        eprintln!("s3-bench: cannot drop the page cache ({e}); reads may come from memory");
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load an S3 endpoint.
    Run {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        ca: Option<PathBuf>,
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        secret: String,
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// Created if missing.
        #[arg(long, default_value = "bench")]
        bucket: String,
        #[command(flatten)]
        load: Load,
    },
    /// Write (fsync) and read the same bytes as files in a directory.
    Raw {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        load: Load,
    },
    /// Make a service account with an access key in IAM for LightningStor; prints `id secret`.
    LightningstorKey {
        #[arg(long)]
        iam: String,
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        admin_password: String,
    },
}

/// One timed phase: `clients` workers call `op(worker, i)` until `deadline` or `stop`.
async fn phase<F, Fut>(clients: usize, deadline: Option<Instant>, op: F) -> (Vec<Duration>, Duration, u64)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<bool>> + Send,
{
    let op = Arc::new(op);
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..clients {
        let (op, errors, stop) = (op.clone(), errors.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
                let at = Instant::now();
                match op(worker, i).await {
                    Ok(true) => samples.push(at.elapsed()),
                    Ok(false) => break,
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("s3-bench: {e:#}");
                        }
                    }
                }
                i += 1;
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await.unwrap_or_default());
    }
    (samples, start.elapsed(), errors.load(Ordering::Relaxed))
}

fn report(
    label: &str,
    size: usize,
    clients: usize,
    op: &str,
    mut samples: Vec<Duration>,
    elapsed: Duration,
    errors: u64,
) {
    let mut row = summary(op, &mut samples, elapsed, errors);
    let per_second = row["per_second"].as_f64().unwrap_or(0.0);
    row["system"] = label.into();
    row["size"] = size.into();
    row["concurrency"] = clients.into();
    row["mib_per_second"] = (per_second * size as f64 / (1 << 20) as f64).into();
    println!("{row}");
}

/// `size` pseudo-random bytes: real objects (media, backups) do not compress, and Garage
/// compresses blocks by default, so compressible test data would flatter it.
fn incompressible(size: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Keys per LIST page for objects of `size` bytes: 1000 small ones, fewer as they grow (10 of
/// 64 MiB), so that the PUT phase can always write them and every system lists the same number.
fn list_keys(size: usize) -> u64 {
    ((640u64 << 20) / size.max(1) as u64).clamp(10, 1000)
}

/// Objects each worker may write in a phase: the byte budget shared out.
fn budget(load: &Load, size: usize, clients: usize) -> u64 {
    (load.max_bytes / size as u64 / clients as u64).max(1)
}

async fn run_s3(client: Arc<S3Client>, bucket: String, load: Load) -> anyhow::Result<()> {
    let _ = client.send(Method::PUT, &format!("/{bucket}"), "", &[], empty()).await;
    for &size in &load.sizes {
        let data = Bytes::from(incompressible(size));
        for &clients in &load.concurrency {
            let prefix = format!("{}/{size}/{clients}", load.label);
            let written: Arc<Vec<AtomicU64>> = Arc::new((0..clients).map(|_| AtomicU64::new(0)).collect());
            let cap = budget(&load, size, clients);
            // The PUT phase goes past its time until the LIST phase has its page of keys.
            let listed = list_keys(size).min(cap * clients as u64);
            let until = Instant::now() + Duration::from_secs(load.seconds);
            let (c, b, p, d, w) = (client.clone(), bucket.clone(), prefix.clone(), data.clone(), written.clone());
            let (samples, elapsed, errors) = phase(clients, None, move |worker, i| {
                let (c, b, p, d, w) = (c.clone(), b.clone(), p.clone(), d.clone(), w.clone());
                async move {
                    let enough = || w.iter().map(|n| n.load(Ordering::Relaxed)).sum::<u64>() >= listed;
                    let now = Instant::now();
                    if i >= cap || (now >= until && enough()) || now >= until + Duration::from_secs(120) {
                        return Ok(false);
                    }
                    let body = Full::new(d).map_err(|never| match never {}).boxed();
                    let path = format!("/{b}/{p}/{worker}-{i}");
                    let (response, sender) =
                        c.send_keep(Method::PUT, &path, "", &[("content-length", size.to_string())], body).await?;
                    response.into_body().collect().await?;
                    c.release(sender);
                    w[worker].fetch_add(1, Ordering::Relaxed);
                    Ok(true)
                }
            })
            .await;
            report(&load.label, size, clients, "put", samples, elapsed, errors);

            let counts: Vec<u64> = written.iter().map(|n| n.load(Ordering::Relaxed)).collect();
            drop_caches(&load);
            let deadline = Some(Instant::now() + Duration::from_secs(load.seconds));
            let (c, b, p, n) = (client.clone(), bucket.clone(), prefix.clone(), Arc::new(counts.clone()));
            let (samples, elapsed, errors) = phase(clients, deadline, move |worker, i| {
                let (c, b, p, n) = (c.clone(), b.clone(), p.clone(), n.clone());
                async move {
                    if i >= n[worker] {
                        return Ok(false);
                    }
                    let path = format!("/{b}/{p}/{worker}-{i}");
                    let (response, sender) = c.send_keep(Method::GET, &path, "", &[], empty()).await?;
                    // Counted as it streams, as a client saving to disk would: no 64 MiB buffer
                    // per GET competing with the servers for the CPU.
                    let (mut body, mut got) = (response.into_body(), 0);
                    while let Some(frame) = body.frame().await {
                        got += frame?.data_ref().map_or(0, |d| d.len());
                    }
                    anyhow::ensure!(got == size, "GET {path} answered {got} bytes, not {size}");
                    c.release(sender);
                    Ok(true)
                }
            })
            .await;
            report(&load.label, size, clients, "get", samples, elapsed, errors);

            let deadline = Some(Instant::now() + Duration::from_secs(load.list_seconds));
            let (c, b, p) = (client.clone(), bucket.clone(), prefix.clone());
            // Every page holds the same number of keys for every system, whatever its PUT rate.
            let keys = listed;
            let (samples, elapsed, errors) = phase(clients, deadline, move |_, _| {
                let (c, b, p) = (c.clone(), b.clone(), p.clone());
                async move {
                    let query =
                        format!("list-type=2&max-keys={keys}&prefix={}", photon_auth::sigv4::encode(&format!("{p}/")));
                    let (response, sender) = c.send_keep(Method::GET, &format!("/{b}"), &query, &[], empty()).await?;
                    let page = response.into_body().collect().await?.to_bytes();
                    c.release(sender);
                    // KeyCount comes before the keys (both servers write it so).
                    let count = format!("<KeyCount>{keys}</KeyCount>");
                    anyhow::ensure!(
                        page[..page.len().min(1024)].windows(count.len()).any(|w| w == count.as_bytes()),
                        "LIST did not answer {count}"
                    );
                    Ok(true)
                }
            })
            .await;
            report(&load.label, size, clients, "list", samples, elapsed, errors);

            let (c, b, p, n) = (client.clone(), bucket.clone(), prefix.clone(), Arc::new(counts));
            let (samples, elapsed, errors) = phase(clients, None, move |worker, i| {
                let (c, b, p, n) = (c.clone(), b.clone(), p.clone(), n.clone());
                async move {
                    if i >= n[worker] {
                        return Ok(false);
                    }
                    let (response, sender) =
                        c.send_keep(Method::DELETE, &format!("/{b}/{p}/{worker}-{i}"), "", &[], empty()).await?;
                    response.into_body().collect().await?;
                    c.release(sender);
                    Ok(true)
                }
            })
            .await;
            report(&load.label, size, clients, "delete", samples, elapsed, errors);
        }
    }
    Ok(())
}

/// The same bytes as files: written and fsynced (file and directory), read back, removed.
async fn run_raw(dir: PathBuf, load: Load) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir)?;
    for &size in &load.sizes {
        let data = Arc::new(incompressible(size));
        for &clients in &load.concurrency {
            let cap = budget(&load, size, clients);
            let written: Arc<Vec<AtomicU64>> = Arc::new((0..clients).map(|_| AtomicU64::new(0)).collect());
            let deadline = Some(Instant::now() + Duration::from_secs(load.seconds));
            let (dd, d, w) = (dir.clone(), data.clone(), written.clone());
            let (samples, elapsed, errors) = phase(clients, deadline, move |worker, i| {
                let (dd, d, w) = (dd.clone(), d.clone(), w.clone());
                async move {
                    if i >= cap {
                        return Ok(false);
                    }
                    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                        use std::io::Write;
                        let mut file = std::fs::File::create(dd.join(format!("{size}-{clients}-{worker}-{i}")))?;
                        file.write_all(&d)?;
                        file.sync_all()?;
                        std::fs::File::open(&dd)?.sync_all()?;
                        Ok(())
                    })
                    .await??;
                    w[worker].fetch_add(1, Ordering::Relaxed);
                    Ok(true)
                }
            })
            .await;
            report(&load.label, size, clients, "put", samples, elapsed, errors);
            let counts = Arc::new(written.iter().map(|n| n.load(Ordering::Relaxed)).collect::<Vec<u64>>());
            drop_caches(&load);
            let deadline = Some(Instant::now() + Duration::from_secs(load.seconds));
            let (dd, n) = (dir.clone(), counts.clone());
            let (samples, elapsed, errors) = phase(clients, deadline, move |worker, i| {
                let (dd, n) = (dd.clone(), n.clone());
                async move {
                    if i >= n[worker] {
                        return Ok(false);
                    }
                    let path = dd.join(format!("{size}-{clients}-{worker}-{i}"));
                    let got = tokio::task::spawn_blocking(move || read_streaming(&path)).await??;
                    anyhow::ensure!(got == size, "read {got} bytes, not {size}");
                    Ok(true)
                }
            })
            .await;
            report(&load.label, size, clients, "get", samples, elapsed, errors);
            for (worker, count) in counts.iter().enumerate() {
                for i in 0..*count {
                    let _ = std::fs::remove_file(dir.join(format!("{size}-{clients}-{worker}-{i}")));
                }
            }
        }
    }
    Ok(())
}

/// Reads a file through a reused 1 MiB buffer (as the S3 GETs stream): its length.
fn read_streaming(path: &std::path::Path) -> std::io::Result<usize> {
    use std::io::Read;
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 1 << 20]);
    }
    let mut file = std::fs::File::open(path)?;
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let mut total = 0;
        loop {
            match file.read(&mut buffer)? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    })
}

fn bearer<T>(token: &str, message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

/// A service account `sa:bench/p/s3` (member of bench/p) and a new access key for it.
async fn lightningstor_key(iam: &str, ca: PathBuf, password: &str) -> anyhow::Result<(String, String)> {
    let options = photon_client::ChannelOptions { ca: Some(ca), ..Default::default() };
    let channel = photon_client::lazy_channel(iam, &options)?;
    let credentials = pb::issue_token_request::Credentials::Password(pb::PasswordCredentials {
        user: "admin".into(),
        password: password.into(),
    });
    let root = TokensClient::new(channel.clone())
        .issue_token(pb::IssueTokenRequest { credentials: Some(credentials) })
        .await?
        .into_inner()
        .access_token;
    let mut admin = AdminClient::new(channel);
    let exists = |r: Result<(), tonic::Status>| match r {
        Err(s) if s.code() != tonic::Code::AlreadyExists => Err(anyhow::anyhow!("setting up: {}", s.message())),
        _ => Ok(()),
    };
    exists(
        admin
            .create_org(bearer(&root, pb::CreateOrgRequest { name: "bench".into(), display_name: String::new() })?)
            .await
            .map(|_| ()),
    )?;
    let project = pb::CreateProjectRequest { org: "bench".into(), name: "p".into(), display_name: String::new() };
    exists(admin.create_project(bearer(&root, project)?).await.map(|_| ()))?;
    let sa = pb::CreateServiceAccountRequest { org: "bench".into(), project: "p".into(), name: "s3".into() };
    exists(admin.create_service_account(bearer(&root, sa)?).await.map(|_| ()))?;
    let binding = pb::CreateBindingRequest {
        scope: "orgs/bench/projects/p".into(),
        principal: "sa:bench/p/s3".into(),
        role: "member".into(),
        ..Default::default()
    };
    exists(admin.create_binding(bearer(&root, binding)?).await.map(|_| ()))?;
    let key = admin
        .create_access_key(bearer(&root, pb::CreateAccessKeyRequest { principal: "sa:bench/p/s3".into() })?)
        .await?
        .into_inner();
    Ok((key.key.map(|k| k.key_id).unwrap_or_default(), key.secret))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run { endpoint, ca, key_id, secret, region, bucket, load } => {
            let client = Arc::new(S3Client::new(&endpoint, ca.as_deref(), (key_id, secret), &region)?);
            run_s3(client, bucket, load).await
        }
        Command::Raw { dir, load } => run_raw(dir, load).await,
        Command::LightningstorKey { iam, ca, admin_password } => {
            let (id, secret) = lightningstor_key(&iam, ca, &admin_password).await?;
            println!("{id} {secret}");
            Ok(())
        }
    }
}
