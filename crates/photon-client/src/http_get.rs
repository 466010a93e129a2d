//! A minimal HTTP/1.1 GET over TLS or plaintext, enough for health probes without pulling in a
//! general-purpose HTTP client.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::ClientError;

/// Responses larger than this are refused: probes only read small JSON documents.
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Bytes,
}

/// A `/health` answer: the HTTP status and the JSON document (Null if the body was not JSON).
#[derive(Debug, Clone)]
pub struct HealthAnswer {
    pub http_status: u16,
    pub body: serde_json::Value,
}

impl HealthAnswer {
    /// The `status` field (`healthy`, `degraded`, `unhealthy`), if present.
    pub fn status(&self) -> Option<&str> {
        self.body.get("status").and_then(|s| s.as_str())
    }
}

/// `GET {base}/health`, trusting `ca` for https.
pub async fn probe_health(base: &str, ca: Option<&Path>, timeout: Duration) -> Result<HealthAnswer, ClientError> {
    let answer = get(&format!("{}/health", base.trim_end_matches('/')), ca, timeout).await?;
    let body = serde_json::from_slice(&answer.body).unwrap_or(serde_json::Value::Null);
    Ok(HealthAnswer { http_status: answer.status, body })
}

/// `GET url` with a deadline for the whole exchange.
pub async fn get(url: &str, ca: Option<&Path>, timeout: Duration) -> Result<HttpAnswer, ClientError> {
    tokio::time::timeout(timeout, get_inner(url, ca)).await.map_err(|_| ClientError::Timeout(format!("GET {url}")))?
}

async fn get_inner(url: &str, ca: Option<&Path>) -> Result<HttpAnswer, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl { url: url.to_string(), reason: reason.to_string() };
    let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let host = uri.host().ok_or_else(|| invalid("no host"))?.trim_matches(['[', ']']).to_string();
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("scheme must be http or https")),
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addr = format!("{}:{port}", if host.contains(':') { format!("[{host}]") } else { host.clone() });
    // An IP literal is connected to directly: resolving a name runs on tokio's blocking pool,
    // and callers such as photonctl rely on staying single-threaded.
    let connected = match addr.parse::<std::net::SocketAddr>() {
        Ok(socket) => TcpStream::connect(socket).await,
        Err(_) => TcpStream::connect(&addr).await,
    };
    let tcp = connected.map_err(|source| ClientError::Connect { addr: addr.clone(), source })?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(&host).to_string();
    if !https {
        return exchange(tcp, &addr, path, &authority).await;
    }
    let ca = ca.ok_or_else(|| invalid("https needs a CA certificate to trust"))?;
    let config = photon_tls::client_config(photon_tls::load_roots(ca)?, None, &[photon_tls::ALPN_HTTP11])?;
    let name = ServerName::try_from(host.clone()).map_err(|_| invalid("host is not a valid TLS server name"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|source| ClientError::Handshake { addr: addr.clone(), source })?;
    exchange(stream, &addr, path, &authority).await
}

async fn exchange<S>(stream: S, addr: &str, path: &str, authority: &str) -> Result<HttpAnswer, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let fail = |reason: String| ClientError::Http { addr: addr.to_string(), reason };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| fail(e.to_string()))?;
    let request = Request::get(path)
        .header(http::header::HOST, authority)
        .body(Empty::<Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(|e| fail(e.to_string()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY).collect().await.map_err(|e| fail(e.to_string()))?;
        Ok(HttpAnswer { status, body: body.to_bytes() })
    };
    // The connection future drives the socket. A server that answers and then closes (as a
    // draining one does) ends it before we have read the response, so the exchange is always
    // awaited to the end; a connection error is reported only if the exchange failed too.
    tokio::pin!(exchange);
    tokio::select! {
        answer = &mut exchange => answer,
        ended = connection => {
            let answer = exchange.await;
            match (answer, ended) {
                (Err(_), Err(e)) => Err(fail(e.to_string())),
                (answer, _) => answer,
            }
        }
    }
}
