//! This node's copy of image parts: each fetched once over HTTP(S) into the cache directory
//! (named by its SHA-256 when the image gives one, else by its URL's), hashed while it streams
//! to disk, and kept only if it matches. A part is shared by every VM booting it; a VM's own
//! disk is a qcow2 overlay on it (`disks`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt as _;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use ring::digest;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

use crate::error::{PlasmavmcError, Result};
use crate::model::image::Source;

pub struct ImageCache {
    dir: PathBuf,
    /// Trusts the platform's CA for https:// sources.
    tls: Option<TlsConnector>,
    /// One fetch of a part at a time.
    fetching: tokio::sync::Mutex<()>,
    /// The group that reads parts (QEMUs running as users of their own), if any.
    group: Option<u32>,
}

/// Makes a part readable by `group` (the QEMUs') and nobody else.
fn share(part: &Path, group: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(part, std::fs::Permissions::from_mode(0o640))?;
    std::os::unix::fs::chown(part, None, Some(group))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ImageCache {
    pub fn new(dir: PathBuf, ca: Option<&Path>, group: Option<u32>) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&dir)?;
        if let Some(group) = group {
            // Parts fetched while QEMU ran as the agent become the QEMUs' group's too.
            for entry in std::fs::read_dir(&dir)?.filter_map(|e| e.ok()) {
                share(&entry.path(), group)?;
            }
        }
        let tls = match ca {
            Some(ca) => {
                let roots = photon_tls::load_roots(ca).map_err(|e| anyhow::anyhow!("the CA {}: {e}", ca.display()))?;
                let config = photon_tls::client_config(roots, None, &[photon_tls::ALPN_HTTP11])?;
                Some(TlsConnector::from(Arc::new(config)))
            }
            None => None,
        };
        Ok(Arc::new(Self { dir, tls, fetching: tokio::sync::Mutex::new(()), group }))
    }

    fn path_of(&self, source: &Source) -> PathBuf {
        let name = match &source.sha256 {
            Some(sum) => sum.to_ascii_lowercase(),
            None => format!("url-{}", hex(digest::digest(&digest::SHA256, source.url.as_bytes()).as_ref())),
        };
        self.dir.join(name)
    }

    /// The local file of `source`, fetched first if this node has none.
    pub async fn get(&self, source: &Source) -> Result<PathBuf> {
        let path = self.path_of(source);
        if path.exists() {
            return Ok(path);
        }
        let _one = self.fetching.lock().await;
        if path.exists() {
            return Ok(path);
        }
        let started = std::time::Instant::now();
        let partial = path.with_extension("partial");
        let outcome = self.fetch(source, &partial).await;
        let (size, sum) = match outcome {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        if let Some(expected) = &source.sha256 {
            if !expected.eq_ignore_ascii_case(&sum) {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(PlasmavmcError::image(
                    &source.url,
                    format!("its SHA-256 is {sum}, the image says {expected}"),
                ));
            }
        }
        if let Some(group) = self.group {
            share(&partial, group).map_err(|e| PlasmavmcError::io(format!("sharing {} with QEMU", partial.display()), e))?;
        }
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(|e| PlasmavmcError::io(format!("keeping {}", path.display()), e))?;
        tracing::info!(url = %redact(&source.url), bytes = size, sha256 = %sum, ms = started.elapsed().as_millis() as u64, "fetched an image part");
        Ok(path)
    }

    /// Streams `source` into `to`: (bytes, SHA-256).
    async fn fetch(&self, source: &Source, to: &Path) -> Result<(u64, String)> {
        let url = &source.url;
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
        let mut file = tokio::fs::File::create(to)
            .await
            .map_err(|e| PlasmavmcError::io(format!("creating {}", to.display()), e))?;
        let mut context = digest::Context::new(&digest::SHA256);
        let mut size = 0u64;
        let mut body = response.into_body().into_data_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| fail(format!("reading: {e}")))?;
            context.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(|e| PlasmavmcError::io(format!("writing {}", to.display()), e))?;
        }
        file.sync_all().await.map_err(|e| PlasmavmcError::io(format!("syncing {}", to.display()), e))?;
        Ok((size, hex(context.finish().as_ref())))
    }
}

/// A URL as logs show it: a presigned URL's query (its signature) left out.
pub fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?..."),
        None => url.to_string(),
    }
}
