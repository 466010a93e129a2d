//! `photonctl bucket` and `photonctl object`: LightningStor through its S3 endpoint, with the
//! access key `photonctl up` wrote (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). `object cp`
//! streams either way with a progress line on stderr; memory stays at one read buffer.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Subcommand;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Method;
use tokio::io::AsyncWriteExt;

use photon_s3::{empty, encode_key, S3Client};

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// List the buckets the key may see.
    Ls,
    /// Make a bucket (in the key's project).
    Mb { name: String },
    /// Remove an empty bucket.
    Rb { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ObjectCommand {
    /// List objects under s3://BUCKET[/PREFIX], one level (prefixes end with /).
    Ls { location: String },
    /// Copy a local file to s3://BUCKET/KEY or back (one side must be s3://).
    Cp { from: String, to: String },
    /// Remove s3://BUCKET/KEY.
    Rm { location: String },
}

/// (bucket, key) of `s3://bucket/key`.
fn location(text: &str) -> anyhow::Result<(String, String)> {
    let rest = text.strip_prefix("s3://").with_context(|| format!("{text} is not s3://BUCKET[/KEY]"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    anyhow::ensure!(!bucket.is_empty(), "{text} names no bucket");
    Ok((bucket.to_string(), key.to_string()))
}

fn human(bytes: u64) -> String {
    let mib = bytes as f64 / (1 << 20) as f64;
    if mib >= 1.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{bytes} B")
    }
}

/// A progress line on stderr: on a terminal one bar redrawn at most ten times a second, its line
/// always ended before anything else is printed (when the copy finishes, and when it fails, on
/// drop), so an error message never lands in the middle of a bar; in a log or a pipe a whole line
/// every 5 seconds and one at the end, never a carriage return.
struct Progress {
    total: u64,
    done: u64,
    start: Instant,
    drawn: Instant,
    /// Stderr is a terminal.
    visible: bool,
    /// A bar is on screen and its line is not ended yet.
    open: bool,
}

impl Progress {
    fn new(total: u64) -> Self {
        use std::io::IsTerminal as _;
        let now = Instant::now();
        Self { total, done: 0, start: now, drawn: now, visible: std::io::stderr().is_terminal(), open: false }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        let every = if self.visible { 100 } else { 5000 };
        if self.drawn.elapsed().as_millis() >= every {
            self.draw();
        }
    }

    fn draw(&mut self) {
        self.drawn = Instant::now();
        let secs = self.start.elapsed().as_secs_f64().max(0.001);
        let percent = (self.done * 100).checked_div(self.total).unwrap_or(100);
        let width = 30;
        let filled = (percent as usize * width / 100).min(width);
        let line = format!(
            "[{}{}] {:>3}% {} / {} {}/s",
            "#".repeat(filled),
            " ".repeat(width - filled),
            percent,
            human(self.done),
            human(self.total),
            human((self.done as f64 / secs) as u64)
        );
        if self.visible {
            self.open = true;
            eprint!("\r{line}   ");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(mut self) {
        self.draw();
        self.end_line();
    }

    fn end_line(&mut self) {
        if self.open {
            eprintln!();
            self.open = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.end_line();
    }
}

pub async fn bucket(client: &S3Client, command: BucketCommand) -> anyhow::Result<()> {
    match command {
        BucketCommand::Ls => {
            let doc = client.xml(Method::GET, "/", "").await?;
            let names = photon_s3::texts(&doc, "Bucket", "Name")?;
            let dates = photon_s3::texts(&doc, "Bucket", "CreationDate")?;
            for (name, date) in names.iter().zip(dates) {
                println!("{date}  {name}");
            }
        }
        BucketCommand::Mb { name } => {
            client.send(Method::PUT, &format!("/{name}"), "", &[], empty()).await?;
            println!("made bucket {name}");
        }
        BucketCommand::Rb { name } => {
            client.send(Method::DELETE, &format!("/{name}"), "", &[], empty()).await?;
            println!("removed bucket {name}");
        }
    }
    Ok(())
}

pub async fn object(client: &S3Client, command: ObjectCommand) -> anyhow::Result<()> {
    match command {
        ObjectCommand::Ls { location: text } => {
            let (bucket, prefix) = location(&text)?;
            let mut token = String::new();
            loop {
                let mut query = format!("delimiter=%2F&list-type=2&prefix={}", photon_auth::sigv4::encode(&prefix));
                if !token.is_empty() {
                    query = format!("continuation-token={}&{query}", photon_auth::sigv4::encode(&token));
                }
                let doc = client.xml(Method::GET, &format!("/{bucket}"), &query).await?;
                for prefix in photon_s3::texts(&doc, "CommonPrefixes", "Prefix")? {
                    println!("{:>28}  {prefix}", "PRE");
                }
                let keys = photon_s3::texts(&doc, "Contents", "Key")?;
                let sizes = photon_s3::texts(&doc, "Contents", "Size")?;
                let dates = photon_s3::texts(&doc, "Contents", "LastModified")?;
                for ((key, size), date) in keys.iter().zip(sizes).zip(dates) {
                    println!("{date} {size:>12}  {key}");
                }
                match photon_s3::texts(&doc, "ListBucketResult", "NextContinuationToken")?.pop() {
                    Some(next) if !next.is_empty() => token = next,
                    _ => break,
                }
            }
        }
        ObjectCommand::Cp { from, to } => match (from.starts_with("s3://"), to.starts_with("s3://")) {
            (false, true) => upload(client, Path::new(&from), &to).await?,
            (true, false) => download(client, &from, Path::new(&to)).await?,
            _ => anyhow::bail!("cp copies between a local file and s3://BUCKET/KEY; exactly one side must be s3://"),
        },
        ObjectCommand::Rm { location: text } => {
            let (bucket, key) = location(&text)?;
            anyhow::ensure!(!key.is_empty(), "{text} names no key");
            client.send(Method::DELETE, &format!("/{bucket}/{}", encode_key(&key)), "", &[], empty()).await?;
            println!("removed {text}");
        }
    }
    Ok(())
}

async fn upload(client: &S3Client, file: &Path, to: &str) -> anyhow::Result<()> {
    let (bucket, mut key) = location(to)?;
    if key.is_empty() || key.ends_with('/') {
        key.push_str(&file.file_name().context("the source has no file name")?.to_string_lossy());
    }
    let source = tokio::fs::File::open(file).await.with_context(|| format!("opening {}", file.display()))?;
    let size = source.metadata().await?.len();
    let mut progress = Progress::new(size);
    let (tx, rx) = tokio::sync::mpsc::channel::<u64>(64);
    let stream = tokio_util::io::ReaderStream::with_capacity(source, 256 << 10).map(move |piece| {
        let piece = piece?;
        let _ = tx.try_send(piece.len() as u64);
        Ok::<_, std::io::Error>(Frame::data(piece))
    });
    let body = BodyExt::boxed(StreamBody::new(stream));
    let path = format!("/{bucket}/{}", encode_key(&key));
    let headers = [("content-length", size.to_string())];
    let sending = client.send(Method::PUT, &path, "", &headers, body);
    let watching = async {
        let mut rx = rx;
        while let Some(n) = rx.recv().await {
            progress.advance(n);
        }
    };
    let (result, ()) = tokio::join!(sending, watching);
    result?;
    progress.finish();
    println!("uploaded {} to s3://{bucket}/{key} ({})", file.display(), human(size));
    Ok(())
}

async fn download(client: &S3Client, from: &str, to: &Path) -> anyhow::Result<()> {
    let (bucket, key) = location(from)?;
    anyhow::ensure!(!key.is_empty(), "{from} names no key");
    let target: PathBuf = if to.is_dir() { to.join(key.rsplit('/').next().unwrap_or(&key)) } else { to.to_path_buf() };
    let response = client.send(Method::GET, &format!("/{bucket}/{}", encode_key(&key)), "", &[], empty()).await?;
    let size = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Written beside the target and renamed when whole, so a failed download leaves no torn file.
    let partial = target.with_extension("photonctl-partial");
    let mut file =
        tokio::fs::File::create(&partial).await.with_context(|| format!("creating {}", partial.display()))?;
    let mut progress = Progress::new(size);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.context("the download broke off")?.into_data() {
            let data: Bytes = data;
            file.write_all(&data).await?;
            progress.advance(data.len() as u64);
        }
    }
    file.sync_all().await?;
    anyhow::ensure!(progress.done == size, "the download ended after {} of {size} bytes", progress.done);
    tokio::fs::rename(&partial, &target).await?;
    progress.finish();
    println!("downloaded {from} to {} ({})", target.display(), human(size));
    Ok(())
}
