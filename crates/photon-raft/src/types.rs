//! The openraft type configuration, generic over the application.

use std::fmt;
use std::io::Cursor;
use std::marker::PhantomData;

use crate::App;

/// Raft node ids are plain integers; the node's peer address travels in `BasicNode`.
pub type NodeId = u64;

/// openraft's type configuration for application `A`. A zero-sized marker: the manual trait
/// impls below avoid the bounds `#[derive]` would put on `A`.
pub struct TypeConfig<A>(PhantomData<fn() -> A>);

impl<A> fmt::Debug for TypeConfig<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TypeConfig")
    }
}
impl<A> Clone for TypeConfig<A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A> Copy for TypeConfig<A> {}
impl<A> Default for TypeConfig<A> {
    fn default() -> Self {
        Self(PhantomData)
    }
}
impl<A> PartialEq for TypeConfig<A> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<A> Eq for TypeConfig<A> {}
impl<A> PartialOrd for TypeConfig<A> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<A> Ord for TypeConfig<A> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// The payload of one log entry: the client commands proposed together (see
/// `network::batcher`). Applied in order, each seeing the ones before it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Batch<R>(pub Vec<R>);

impl<A: App> openraft::RaftTypeConfig for TypeConfig<A> {
    type D = Batch<A::Request>;
    /// One response per command of the entry's batch, in order.
    type R = Vec<A::Response>;
    type NodeId = NodeId;
    type Node = openraft::BasicNode;
    type Entry = openraft::Entry<Self>;
    type SnapshotData = Cursor<Vec<u8>>;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}
