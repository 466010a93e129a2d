//! Image parts as bytes on the move: read from a URL (HTTP, or HTTPS trusting the platform CA)
//! or from the platform bucket, each streamed into a file and hashed on the way, so whoever
//! keeps a part knows its SHA-256 without reading it twice. The importer (on the scheduler's
//! node) and every agent's cache use them.

use std::path::Path;
use std::sync::Arc;

use futures_util::{Stream, StreamExt as _};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use ring::digest;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use crate::error::{PlasmavmcError, Result};

/// Reads parts from URLs.
#[derive(Clone)]
pub struct Fetcher {
    /// Trusts the platform's CA for https:// sources.
    tls: Option<TlsConnector>,
}

impl Fetcher {
    pub fn new(ca: Option<&Path>) -> anyhow::Result<Self> {
        let tls = match ca {
            Some(ca) => {
                let roots = photon_tls::load_roots(ca).map_err(|e| anyhow::anyhow!("the CA {}: {e}", ca.display()))?;
                let config = photon_tls::client_config(roots, None, &[photon_tls::ALPN_HTTP11])?;
                Some(TlsConnector::from(Arc::new(config)))
            }
            None => None,
        };
        Ok(Self { tls })
    }

    /// Streams `url` into `to`: (bytes, SHA-256).
    pub async fn fetch(&self, url: &str, to: &Path) -> Result<(u64, String)> {
        let fail = |message: String| PlasmavmcError::image(redact(url), message);
        let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            _ => return Err(fail("not an http:// or https:// URL".into())),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let host = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority).trim_matches(['[', ']']);
        let address = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        let tcp = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| fail(format!("connecting to {address}: {e}")))?;
        let request = hyper::Request::get(path)
            .header("host", authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| fail(e.to_string()))?;
        let response = if tls {
            let connector = self.tls.clone().ok_or_else(|| fail("https needs the platform's CA (tls.ca)".into()))?;
            let name = rustls_pki_types::ServerName::try_from(host.to_string()).map_err(|e| fail(e.to_string()))?;
            let stream = connector.connect(name, tcp).await.map_err(|e| fail(format!("TLS: {e}")))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| fail(e.to_string()))?;
            tokio::spawn(connection);
            sender.send_request(request).await.map_err(|e| fail(e.to_string()))?
        } else {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| fail(e.to_string()))?;
            tokio::spawn(connection);
            sender.send_request(request).await.map_err(|e| fail(e.to_string()))?
        };
        if !response.status().is_success() {
            return Err(fail(format!("the server answered {}", response.status())));
        }
        save(response.into_body().into_data_stream(), to, u64::MAX).await.map_err(|e| match e {
            Saved::Read(message) => fail(format!("reading: {message}")),
            Saved::Write(e) => e,
        })
    }
}

/// Why `save` stopped.
pub enum Saved {
    /// The stream broke.
    Read(String),
    /// The file could not be written.
    Write(PlasmavmcError),
}

/// Writes `body` into a new file `to`, synced: (bytes, SHA-256). A body longer than `limit`
/// bytes is cut off (`Saved::Read`).
pub async fn save<E: std::fmt::Display>(
    mut body: impl Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    to: &Path,
    limit: u64,
) -> std::result::Result<(u64, String), Saved> {
    let io = |what: &str, e| Saved::Write(PlasmavmcError::io(format!("{what} {}", to.display()), e));
    let mut file = tokio::fs::File::create(to).await.map_err(|e| io("creating", e))?;
    let mut context = digest::Context::new(&digest::SHA256);
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Saved::Read(e.to_string()))?;
        context.update(&chunk);
        size += chunk.len() as u64;
        if size > limit {
            return Err(Saved::Read(format!("longer than {limit} bytes")));
        }
        file.write_all(&chunk).await.map_err(|e| io("writing", e))?;
    }
    file.sync_all().await.map_err(|e| io("syncing", e))?;
    Ok((size, hex(context.finish().as_ref())))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A URL as logs show it: a presigned URL's query (its signature) left out.
pub fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?..."),
        None => url.to_string(),
    }
}
