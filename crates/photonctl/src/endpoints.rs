//! Where each service's API port is: the catalog's port plus an optional offset (so tests and a
//! second developer platform can run beside the default one). `photonctl up` runs services
//! unprivileged, so it serves a catalog port below 1024 at port + 10000 (flashdns: the API on
//! 10853, DNS on 10053); an installed node's systemd unit serves the real port. Clients of such
//! a service try `up`'s port first, then the real one, so they are right in both places.

use std::path::Path;
use std::time::Duration;

use photon_client::HealthAnswer;

use crate::catalog::{ServiceEntry, CATALOG, DNS_PORT, S3_PORT};

/// How far `photonctl up` moves a privileged port.
pub const UNPRIVILEGED_SHIFT: u16 = 10_000;

/// The port `photonctl up` serves catalog port `port` on: privileged ports (below 1024, which
/// an unprivileged process cannot bind) moved up by `UNPRIVILEGED_SHIFT`, then every port moved
/// by `offset`. `None` past 65535.
pub fn up_port(port: u16, offset: u16) -> Option<u16> {
    let unprivileged = if port < 1024 { port.checked_add(UNPRIVILEGED_SHIFT)? } else { port };
    unprivileged.checked_add(offset)
}

#[derive(Debug, Clone)]
pub struct Endpoints {
    pub host: String,
    pub port_offset: u16,
}

impl Endpoints {
    /// Fails if the offset pushes a port `up` serves past 65535.
    pub fn new(host: String, port_offset: u16) -> anyhow::Result<Self> {
        let ports = CATALOG.iter().map(|e| e.api_port).chain([S3_PORT, DNS_PORT]);
        for port in ports {
            if up_port(port, port_offset).is_none() {
                anyhow::bail!("--port-offset {port_offset} is too large: port {port} moved by it exceeds 65535");
            }
        }
        Ok(Self { host, port_offset })
    }

    /// The port `up` serves `entry`'s API on.
    pub fn port(&self, entry: &ServiceEntry) -> u16 {
        // `new` refused every offset for which this could fail.
        up_port(entry.api_port, self.port_offset).unwrap_or(u16::MAX)
    }

    /// LightningStor's S3 endpoint (`catalog::S3_PORT` plus the offset).
    pub fn s3_url(&self) -> String {
        self.url_at(up_port(S3_PORT, self.port_offset).unwrap_or(u16::MAX))
    }

    /// FlashDNS's DNS port under `up` (`catalog::DNS_PORT`, moved).
    pub fn dns_port(&self) -> u16 {
        up_port(DNS_PORT, self.port_offset).unwrap_or(u16::MAX)
    }

    /// `entry`'s API URL under `up`.
    pub fn url(&self, entry: &ServiceEntry) -> String {
        self.url_at(self.port(entry))
    }

    /// Where `entry` may answer, in the order to try: `up`'s port, then, for a privileged port,
    /// the real one (plus the offset), where an installed node's unit serves it.
    pub fn urls(&self, entry: &ServiceEntry) -> Vec<String> {
        let mut urls = vec![self.url(entry)];
        if let Some(real) = entry.api_port.checked_add(self.port_offset).filter(|&p| p != self.port(entry)) {
            urls.push(self.url_at(real));
        }
        urls
    }

    /// `GET /health` of `entry` at each of its `urls` in turn: the URL of the first that answers
    /// (any HTTP status) with its answer; else `up`'s URL with every URL's error.
    pub async fn probe_health(
        &self,
        entry: &ServiceEntry,
        ca: &Path,
        timeout: Duration,
    ) -> (String, Result<HealthAnswer, String>) {
        let urls = self.urls(entry);
        let mut errors = Vec::new();
        for url in &urls {
            match photon_client::probe_health(url, Some(ca), timeout).await {
                Ok(answer) => return (url.clone(), Ok(answer)),
                Err(e) => errors.push(e.to_string()),
            }
        }
        (urls[0].clone(), Err(errors.join("; ")))
    }

    fn url_at(&self, port: u16) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("https://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> &'static ServiceEntry {
        CATALOG.iter().find(|e| e.name == name).unwrap()
    }

    #[test]
    fn privileged_ports_move_up_by_ten_thousand_then_by_the_offset() {
        assert_eq!(up_port(853, 0), Some(10_853));
        assert_eq!(up_port(53, 0), Some(10_053));
        assert_eq!(up_port(853, 300), Some(11_153));
        assert_eq!(up_port(1023, 0), Some(11_023));
        assert_eq!(up_port(1024, 0), Some(1024), "1024 needs no privilege");
        assert_eq!(up_port(2379, 20_000), Some(22_379));
        assert_eq!(up_port(9000, 7), Some(9007));
        assert_eq!(up_port(853, 60_000), None);
        assert_eq!(up_port(65_535, 1), None);
    }

    #[test]
    fn flashdns_is_tried_at_ups_port_then_at_its_real_one() {
        let local = Endpoints::new("127.0.0.1".into(), 0).unwrap();
        assert_eq!(local.urls(entry("flashdns")), ["https://127.0.0.1:10853", "https://127.0.0.1:853"]);
        assert_eq!(local.dns_port(), 10_053);
        let beside = Endpoints::new("::1".into(), 300).unwrap();
        assert_eq!(beside.urls(entry("flashdns")), ["https://[::1]:11153", "https://[::1]:1153"]);
        assert_eq!(beside.dns_port(), 10_353);
    }

    #[test]
    fn unprivileged_services_have_one_url() {
        let endpoints = Endpoints::new("127.0.0.1".into(), 5).unwrap();
        assert_eq!(endpoints.urls(entry("chainfire")), ["https://127.0.0.1:2384"]);
        assert_eq!(endpoints.url(entry("iam")), "https://127.0.0.1:8085");
        assert_eq!(endpoints.s3_url(), "https://127.0.0.1:9005");
    }

    #[test]
    fn an_offset_that_pushes_a_moved_port_past_65535_is_refused() {
        // 10853 + 54683 = 65536: only the moved flashdns port overflows.
        let error = Endpoints::new("127.0.0.1".into(), 54_683).unwrap_err().to_string();
        assert!(error.contains("853") && error.contains("65535"), "{error}");
        assert!(Endpoints::new("127.0.0.1".into(), 54_682).is_ok());
    }
}
