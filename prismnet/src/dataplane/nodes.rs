//! Nodes' tunnel addresses: every dataplane node writes its own under
//! `/photoncloud/prismnet/nodes/<node>` when it starts, and follows everyone's, so a port bound
//! to a node is reached at that node's address. The record is not tied to a lease: a node
//! restarting (or briefly away) must not make the others drop its ports' entries and cut
//! their traffic.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use photon_resource::{Mirror, Store, Tx};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub const PREFIX: &str = "/photoncloud/prismnet/nodes/";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeRecord {
    pub vtep: Ipv4Addr,
}

/// The address the kernel would send from toward the default route, else loopback (a node
/// alone needs no tunnel).
pub fn default_vtep() -> Ipv4Addr {
    let probe = || -> std::io::Result<Ipv4Addr> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        // TEST-NET-1: never sent to (UDP connect only picks a route and a source).
        socket.connect("192.0.2.1:9")?;
        match socket.local_addr()?.ip() {
            std::net::IpAddr::V4(v4) => Ok(v4),
            std::net::IpAddr::V6(_) => Ok(Ipv4Addr::LOCALHOST),
        }
    };
    probe().unwrap_or(Ipv4Addr::LOCALHOST)
}

/// Writes this node's record, retrying until chainfire takes it or `shutdown`.
pub async fn register(store: Store, node: String, record: NodeRecord, shutdown: CancellationToken) {
    let key = format!("{PREFIX}{node}");
    loop {
        let written = match Tx::new().put(&key, &record) {
            Ok(tx) => store.commit(tx).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(_) => {
                tracing::info!(%node, vtep = %record.vtep, "registered this node's tunnel address");
                return;
            }
            Err(e) => tracing::warn!(%node, error = %e, "cannot register this node's tunnel address yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Every node's tunnel address from the followed records.
pub fn addresses(mirror: &Mirror) -> BTreeMap<String, Ipv4Addr> {
    mirror
        .items()
        .iter()
        .filter_map(|(key, value)| {
            let node = key.strip_prefix(PREFIX)?;
            let record: NodeRecord = serde_json::from_slice(value).ok()?;
            Some((node.to_string(), record.vtep))
        })
        .collect()
}
