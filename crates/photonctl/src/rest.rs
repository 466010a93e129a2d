//! photonctl's client of the services' REST APIs: one HTTP/1.1 request per connection over
//! rustls (trusting the given CA) or plain HTTP, with a bearer token, read to the end. An
//! error answer in the platform's shape (`{"error":{"code","message","field"}}`) reads as a
//! message.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// Connecting may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole exchange may take this long (an import of a large zone file is one request).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Answers larger than this are refused (a zone export is the largest answer expected).
const MAX_ANSWER: usize = 64 << 20;

/// A service's REST API at one base URL.
pub struct Rest {
    /// `https://host:port`, for messages.
    base: String,
    /// `host:port`.
    authority: String,
    server_name: ServerName<'static>,
    /// `None`: plain HTTP.
    tls: Option<TlsConnector>,
    token: String,
}

/// An answer of any HTTP status.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (an error if it is not).
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("the answer is not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Rest {
    /// A client of `base` (`https://host:port`, trusting `ca`, or `http://host:port`) sending
    /// `token` as the bearer.
    pub fn new(base: &str, ca: &Path, token: String) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        let uri: Uri = base.parse().with_context(|| format!("{base} is not a URL"))?;
        let authority = uri.authority().with_context(|| format!("{base} names no host"))?.to_string();
        let host = uri.host().unwrap_or_default().trim_matches(['[', ']']).to_string();
        let server_name =
            ServerName::try_from(host.clone()).with_context(|| format!("{host} is not a TLS server name"))?;
        let tls = match uri.scheme_str() {
            Some("https") => {
                let roots = photon_tls::load_roots(ca).with_context(|| format!("the CA {}", ca.display()))?;
                let config = photon_tls::client_config(roots, None, &[photon_tls::ALPN_HTTP11])?;
                Some(TlsConnector::from(Arc::new(config)))
            }
            Some("http") => None,
            _ => anyhow::bail!("{base} is not https://host:port or http://host:port"),
        };
        Ok(Self { base, authority, server_name, tls, token })
    }

    /// The server's host, as the base URL names it (without brackets).
    pub fn host(&self) -> String {
        self.base.parse::<Uri>().ok().and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string())).unwrap_or_default()
    }

    /// Sends `method path` with `body` (of `content_type`); answers whatever status comes back.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Answer> {
        let what = format!("{method} {}{path}", self.base);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.token));
        if let Some(content_type) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let request = request.body(Full::new(body)).with_context(|| format!("{what}: a bad request"))?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| anyhow::anyhow!("connecting to {} timed out", self.base))?
            .with_context(|| format!("cannot connect to {}", self.base))?;
        let exchange = async {
            match &self.tls {
                Some(tls) => {
                    let stream = tls
                        .connect(self.server_name.clone(), tcp)
                        .await
                        .with_context(|| format!("TLS with {}", self.base))?;
                    exchange(stream, request).await
                }
                None => exchange(tcp, request).await,
            }
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("{what} timed out"))?
            .with_context(|| what)
    }
}

async fn exchange<S>(stream: S, request: Request<Full<Bytes>>) -> anyhow::Result<Answer>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let exchange = async {
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?;
        Ok(Answer { status, body: body.to_bytes() })
    };
    // The connection future drives the socket; a server that answers and closes ends it before
    // the answer is read, so the exchange is always awaited to its end.
    tokio::pin!(exchange);
    tokio::select! {
        answer = &mut exchange => answer,
        ended = connection => match (exchange.await, ended) {
            (Err(_), Err(e)) => Err(e.into()),
            (answer, _) => answer,
        },
    }
}

/// What an error answer says: the platform's `{"error":{"code","message","field"}}` as
/// `message (HTTP status, code)` with the field named, else the body as text.
pub fn refusal(answer: &Answer) -> String {
    let text = String::from_utf8_lossy(&answer.body).trim().to_string();
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
        return if text.is_empty() {
            format!("HTTP {}", answer.status)
        } else {
            format!("{text} (HTTP {})", answer.status)
        };
    };
    let error = &doc["error"];
    let message = error["message"].as_str().unwrap_or(&text);
    let code = error["code"].as_str().unwrap_or("error");
    let message = match error["field"].as_str() {
        // The services' messages usually start with the field already.
        Some(field) if !message.starts_with(field) => format!("{field}: {message}"),
        _ => message.to_string(),
    };
    format!("{message} (HTTP {}, {code})", answer.status)
}

/// Where a command is sent: the global `--endpoint` and `--ca`, if given.
pub struct Target {
    pub endpoints: crate::endpoints::Endpoints,
    pub endpoint: Option<String>,
    /// Default: the CA the login trusted.
    pub ca: Option<std::path::PathBuf>,
}

/// The saved login's REST client of `service` (at `target`, else found as `locate` finds it) and
/// the org and project a command acts on (`args`, else the login's).
pub async fn session(
    target: Target,
    args: &crate::dns::ProjectArgs,
    service: &str,
) -> anyhow::Result<(Rest, crate::dns::Owner)> {
    let (session, owner) = located(target, args, service).await?;
    Ok((Rest::new(&session.base, &session.ca, session.token)?, owner))
}

/// Where a service answers and as whom: for a client other than `Rest` (a gRPC stream).
pub struct Located {
    pub base: String,
    pub ca: std::path::PathBuf,
    pub token: String,
}

/// The saved login's token, `service`'s URL and CA, and the org and project a command acts on.
pub async fn located(
    target: Target,
    args: &crate::dns::ProjectArgs,
    service: &str,
) -> anyhow::Result<(Located, crate::dns::Owner)> {
    let (_, token, login) = crate::iam::session().await?;
    let claims = crate::iam::claims(&token)?;
    let owner = crate::dns::owner(args, &login.principal, &claims.org)?;
    let ca = target.ca.unwrap_or(login.ca);
    let base = match target.endpoint {
        Some(endpoint) => endpoint,
        None => locate(&target.endpoints, &ca, service).await?,
    };
    Ok((Located { base, ca, token }, owner))
}

/// Where `service` answers: its API at `up`'s port, else at the real one.
pub async fn locate(endpoints: &crate::endpoints::Endpoints, ca: &Path, service: &str) -> anyhow::Result<String> {
    let entry = crate::catalog::CATALOG.iter().find(|e| e.name == service).with_context(|| format!("{service} is not in the catalog"))?;
    match endpoints.probe_health(entry, ca, Duration::from_secs(3)).await {
        (url, Ok(_)) => Ok(url),
        (_, Err(e)) => anyhow::bail!("{service} is not answering (see photonctl status, or name it with --endpoint): {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer { status, body: Bytes::from(body.to_string()) }
    }

    #[test]
    fn refusals_name_the_message_field_and_code() {
        let invalid = r#"{"error":{"code":"invalid_argument","message":"bad data","field":"data[0]"}}"#;
        assert_eq!(refusal(&answer(400, invalid)), "data[0]: bad data (HTTP 400, invalid_argument)");
        let named = r#"{"error":{"code":"invalid_argument","message":"ttl: too long","field":"ttl"}}"#;
        assert_eq!(refusal(&answer(400, named)), "ttl: too long (HTTP 400, invalid_argument)");
        let missing = r#"{"error":{"code":"not_found","message":"zone a.test. not found"}}"#;
        assert_eq!(refusal(&answer(404, missing)), "zone a.test. not found (HTTP 404, not_found)");
        assert_eq!(refusal(&answer(502, "bad gateway")), "bad gateway (HTTP 502)");
        assert_eq!(refusal(&answer(500, "")), "HTTP 500");
    }
}
