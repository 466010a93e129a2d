//! Where each service's API port is: the catalog's port plus an optional offset (so tests and a
//! second developer platform can run beside the default one).

use crate::catalog::{ServiceEntry, CATALOG};

#[derive(Debug, Clone)]
pub struct Endpoints {
    pub host: String,
    pub port_offset: u16,
}

impl Endpoints {
    /// Fails if the offset pushes a catalog port past 65535.
    pub fn new(host: String, port_offset: u16) -> anyhow::Result<Self> {
        let highest = CATALOG.iter().map(|e| e.api_port).max().unwrap_or(0);
        if highest.checked_add(port_offset).is_none() {
            anyhow::bail!("--port-offset {port_offset} is too large: port {highest} + {port_offset} exceeds 65535");
        }
        Ok(Self { host, port_offset })
    }

    pub fn port(&self, entry: &ServiceEntry) -> u16 {
        entry.api_port + self.port_offset
    }

    /// LightningStor's S3 endpoint (`catalog::S3_PORT` plus the offset).
    pub fn s3_url(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("https://{host}:{}", crate::catalog::S3_PORT + self.port_offset)
    }

    pub fn url(&self, entry: &ServiceEntry) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("https://{host}:{}", self.port(entry))
    }
}
