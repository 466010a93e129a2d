//! The Raft peer transport: a tonic service on the peer port that dispatches to the process's
//! Raft groups by group id, and the client side openraft calls through. Both ends use mutual
//! TLS when [`PeerTls`] is given; messages pass the node's [`crate::fault::FaultInjector`].

mod batcher;
mod client;
mod codec;
mod election_pause;
mod forward;
mod lease;
mod per_group;
mod proposer;
mod read_batcher;
mod server;

use std::path::PathBuf;

pub use client::{PeerClient, PeerNetwork};
pub use forward::ForwardFailure;
pub use lease::LeaseClock;
pub use proposer::{ProposeError, Proposer};
pub use server::{serve, Router};

/// The certificates of a node's peer link: its own identity (presented as server and as
/// client) and the CA that signs every peer.
#[derive(Debug, Clone)]
pub struct PeerTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}
