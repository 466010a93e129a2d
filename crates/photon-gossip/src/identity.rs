//! Who a gossip member is: its node id, the address its gossip port answers at, and a counter
//! that grows each time it (re)joins, so a restarted or wrongly declared-dead node comes back
//! under a newer identity that wins over the old one at once.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Id {
    /// The gossip port's address: what foca knows a member by (an announce to a seed only knows
    /// this much).
    pub addr: SocketAddr,
    /// The node id from cluster-config.json.
    pub node: String,
    /// Milliseconds since the epoch at start, then +1 per rejoin.
    pub bump: u64,
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}#{}", self.node, self.addr, self.bump)
    }
}

impl foca::Identity for Id {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self { bump: self.bump.wrapping_add(1), ..self.clone() })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}
