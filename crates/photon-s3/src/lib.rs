//! A small S3 client: HTTP/1.1 over rustls (or plain HTTP for loopback tools), requests signed
//! with SigV4 (`photon_auth::sigv4::sign`, `UNSIGNED-PAYLOAD`), S3's XML errors turned into
//! messages naming the code. Connections are kept and reused, one per request in flight.
//! `photonctl bucket|object` and the S3 benchmark driver use it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// The text of every `<name>` element under each `<parent>` element of `doc` (an S3 answer).
pub fn texts(doc: &str, parent: &str, name: &str) -> anyhow::Result<Vec<String>> {
    let doc = roxmltree::Document::parse(doc).context("S3 answered XML that does not parse")?;
    Ok(doc
        .descendants()
        .filter(|n| n.tag_name().name() == parent)
        .filter_map(|n| n.children().find(|c| c.tag_name().name() == name))
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect())
}

/// Percent-encodes a key for a request path (S3's rules: `/` kept).
pub fn encode_key(key: &str) -> String {
    photon_auth::sigv4::encode(key).replace("%2F", "/")
}

type Sender = hyper::client::conn::http1::SendRequest<Body>;

pub struct S3Client {
    /// `host:port`.
    authority: String,
    server_name: ServerName<'static>,
    /// `None`: plain HTTP.
    tls: Option<TlsConnector>,
    key: (String, String),
    region: String,
    /// Idle connections.
    idle: std::sync::Mutex<Vec<Sender>>,
}

/// The access key: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else the `[photon]` (or
/// `[default]`) profile of `file` (AWS's shared credentials format).
pub fn credentials(file: &Path) -> anyhow::Result<(String, String)> {
    if let (Ok(id), Ok(secret)) = (std::env::var("AWS_ACCESS_KEY_ID"), std::env::var("AWS_SECRET_ACCESS_KEY")) {
        return Ok((id, secret));
    }
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and no credentials file {} (photonctl up writes one; or \
             photonctl iam access-key create)",
            file.display()
        )
    })?;
    for profile in ["photon", "default"] {
        let mut section = false;
        let (mut id, mut secret) = (None, None);
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line == format!("[{profile}]");
            } else if section {
                if let Some((k, v)) = line.split_once('=') {
                    match k.trim() {
                        "aws_access_key_id" => id = Some(v.trim().to_string()),
                        "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                        _ => {}
                    }
                }
            }
        }
        if let (Some(id), Some(secret)) = (id, secret) {
            return Ok((id, secret));
        }
    }
    anyhow::bail!("{} has no [photon] or [default] profile with both keys", file.display())
}

impl S3Client {
    /// A client of the S3 endpoint `url` (`https://host:port`, trusting `ca`, or
    /// `http://host:port`), signing for `region` with `key`.
    pub fn new(url: &str, ca: Option<&Path>, key: (String, String), region: &str) -> anyhow::Result<Self> {
        let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            _ => anyhow::bail!("the S3 endpoint {url} is not https://host:port or http://host:port"),
        };
        let authority = rest.trim_end_matches('/').to_string();
        let host = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(&authority).trim_matches(['[', ']']);
        let server_name = ServerName::try_from(host.to_string()).with_context(|| format!("bad host {host}"))?;
        let tls = if tls {
            let ca = ca.context("an https S3 endpoint needs a CA to trust")?;
            let roots = photon_tls::load_roots(ca).with_context(|| format!("the CA {}", ca.display()))?;
            let config = photon_tls::client_config(roots, None, &[photon_tls::ALPN_HTTP11])?;
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self { authority, server_name, tls, key, region: region.to_string(), idle: Default::default() })
    }

    /// An idle connection, or a new one.
    async fn connection(&self) -> anyhow::Result<Sender> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match idle {
                Some(mut sender) => {
                    if sender.ready().await.is_ok() {
                        return Ok(sender);
                    }
                }
                None => break,
            }
        }
        let tcp = tokio::net::TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("connecting to S3 at {}", self.authority))?;
        tcp.set_nodelay(true)?;
        let sender = match &self.tls {
            Some(tls) => {
                let stream = tls.connect(self.server_name.clone(), tcp).await.context("TLS with the S3 endpoint")?;
                let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(connection);
                sender
            }
            None => {
                let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(connection);
                sender
            }
        };
        Ok(sender)
    }

    /// Returns a connection whose response was read to the end.
    pub fn release(&self, sender: Sender) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(sender);
    }

    /// Sends a signed request; answers the response, or the S3 error as a message.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> anyhow::Result<Response<Incoming>> {
        let (response, _) = self.send_keep(method, path, query, headers, body).await?;
        Ok(response)
    }

    /// Like `send`, also answering the connection, for `release` once the body is read.
    pub async fn send_keep(
        &self,
        method: Method,
        path: &str,
        query: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> anyhow::Result<(Response<Incoming>, Sender)> {
        let mut sender = self.connection().await?;
        let uri = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
        let mut request = Request::builder().method(method.clone()).uri(&uri).header("host", &self.authority);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut request = request.body(body)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
        let key = (self.key.0.as_str(), self.key.1.as_str());
        photon_auth::sigv4::sign(
            method.as_str(),
            path,
            query,
            request.headers_mut(),
            key,
            &self.region,
            "UNSIGNED-PAYLOAD",
            now,
        )
        .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
        let response = sender.send_request(request).await.context("the S3 request failed")?;
        if response.status().is_success() || response.status() == hyper::StatusCode::NOT_MODIFIED {
            return Ok((response, sender));
        }
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let field = |name: &str| {
            let start = text.find(&format!("<{name}>"))? + name.len() + 2;
            let end = text[start..].find(&format!("</{name}>"))? + start;
            Some(text[start..end].to_string())
        };
        match (field("Code"), field("Message")) {
            (Some(code), Some(message)) => anyhow::bail!("{code}: {message}"),
            _ => anyhow::bail!("S3 answered {status}"),
        }
    }

    /// A request whose answer is an XML document.
    pub async fn xml(&self, method: Method, path: &str, query: &str) -> anyhow::Result<String> {
        let (response, sender) = self.send_keep(method, path, query, &[], empty()).await?;
        let body = response.into_body().collect().await?.to_bytes();
        self.release(sender);
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}
