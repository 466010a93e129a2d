//! tonic channels to PhotonCloud services.

use std::path::PathBuf;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::ClientError;

/// How to reach a service: the CA to trust for `https://` endpoints, and an optional client
/// certificate for services that require mutual TLS.
#[derive(Debug, Clone, Default)]
pub struct ChannelOptions {
    pub ca: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub connect_timeout: Option<Duration>,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read { path: path.to_path_buf(), source })
}

/// Connects to `url` (`https://host:port` or `http://host:port`).
pub async fn channel(url: &str, options: &ChannelOptions) -> Result<Channel, ClientError> {
    Ok(endpoint(url, options)?.connect().await?)
}

/// Whether a failed call provably never reached a server: no connection could be made, so
/// nothing was delivered and retrying cannot apply anything twice. A connection reset after
/// sending is not this (also UNAVAILABLE in tonic): the server may have acted on the request.
pub fn never_sent(status: &tonic::Status) -> bool {
    let message = status.message();
    status.code() == tonic::Code::Unavailable
        && ["tcp connect error", "Connection refused", "error trying to connect", "dns error"]
            .iter()
            .any(|sign| message.contains(sign))
}

/// A channel to `url` that connects on first use and reconnects after failures, for peers
/// that may be down when it is created.
pub fn lazy_channel(url: &str, options: &ChannelOptions) -> Result<Channel, ClientError> {
    Ok(endpoint(url, options)?.connect_lazy())
}

fn endpoint(url: &str, options: &ChannelOptions) -> Result<Endpoint, ClientError> {
    let invalid = |reason: String| ClientError::InvalidUrl { url: url.to_string(), reason };
    let mut endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| invalid(e.to_string()))?;
    endpoint = endpoint.connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(5)));
    if url.starts_with("https://") {
        let host = endpoint.uri().host().unwrap_or_default().trim_matches(['[', ']']).to_string();
        let mut tls = ClientTlsConfig::new().domain_name(host);
        match &options.ca {
            Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(read(ca)?)),
            None => return Err(invalid("https needs a CA certificate to trust (ChannelOptions::ca)".into())),
        }
        if let Some((cert, key)) = &options.client_cert {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    Ok(endpoint)
}
