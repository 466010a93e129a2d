//! What each node tells the others about itself beside being alive: roles, addresses and the
//! health of the services it runs. Sent as foca custom broadcasts, re-sent with a newer version
//! whenever it changes and every few seconds (so a node that joins later learns everyone's),
//! and kept per node at its newest version.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One service on a node and what its `/health` last said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHealth {
    pub name: String,
    /// healthy, degraded, unhealthy, or down (nothing answered).
    pub status: String,
}

/// A node as it describes itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node: String,
    pub roles: Vec<String>,
    pub gossip_addr: SocketAddr,
    /// The node's chainfire API URL.
    pub api_url: String,
    pub services: Vec<ServiceHealth>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Advert {
    pub version: u64,
    pub info: NodeInfo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertKey {
    node: String,
    version: u64,
}

impl foca::Invalidates for AdvertKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.node == other.node && self.version > other.version
    }
}

#[derive(Debug, thiserror::Error)]
#[error("undecodable node advert: {0}")]
pub struct BadAdvert(String);

/// The newest advert of every node, shared between foca's handler and the agent.
#[derive(Clone, Default)]
pub struct Adverts(Arc<Mutex<BTreeMap<String, Advert>>>);

impl Adverts {
    pub fn snapshot(&self) -> BTreeMap<String, Advert> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Keeps `advert` if it is newer than what is known of its node; says whether it was.
    fn offer(&self, advert: Advert) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&advert.info.node) {
            Some(known) if known.version >= advert.version => false,
            _ => {
                map.insert(advert.info.node.clone(), advert);
                true
            }
        }
    }
}

impl foca::BroadcastHandler<crate::identity::Id> for Adverts {
    type Key = AdvertKey;
    type Error = BadAdvert;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&crate::identity::Id>,
    ) -> Result<Option<AdvertKey>, BadAdvert> {
        let advert: Advert = postcard::from_bytes(data).map_err(|e| BadAdvert(e.to_string()))?;
        let key = AdvertKey { node: advert.info.node.clone(), version: advert.version };
        Ok(self.offer(advert).then_some(key))
    }
}

pub fn encode(advert: &Advert) -> Vec<u8> {
    postcard::to_allocvec(advert).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::BroadcastHandler;

    fn advert(node: &str, version: u64) -> Advert {
        Advert {
            version,
            info: NodeInfo {
                node: node.into(),
                roles: vec!["worker".into()],
                gossip_addr: "127.0.0.1:2381".parse().unwrap(),
                api_url: "https://127.0.0.1:2379".into(),
                services: vec![ServiceHealth { name: "chainfire".into(), status: "healthy".into() }],
            },
        }
    }

    #[test]
    fn only_newer_adverts_are_kept_and_passed_on() {
        let mut adverts = Adverts::default();
        assert!(adverts.receive_item(&encode(&advert("n1", 5)), None).unwrap().is_some());
        assert!(adverts.receive_item(&encode(&advert("n1", 5)), None).unwrap().is_none());
        assert!(adverts.receive_item(&encode(&advert("n1", 4)), None).unwrap().is_none());
        assert!(adverts.receive_item(&encode(&advert("n1", 6)), None).unwrap().is_some());
        assert_eq!(adverts.snapshot()["n1"].version, 6);
        assert!(adverts.receive_item(b"\xff\xff\xff", None).is_err());
    }
}
