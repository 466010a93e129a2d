//! The MVCC store's domain types: what a client asks (validated at the gRPC edge and then
//! carried through Raft in this form) and what applying it answers.

use serde::{Deserialize, Serialize};

/// A key's version, as etcd's `mvccpb.KeyValue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// One entry of `kv_history`: a key's value as of a revision, or its deletion there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Version {
    Put(KeyValue),
    Tombstone,
}

/// A key range: `end` empty means just `key`; `[0]` means every key from `key` on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub end: Vec<u8>,
}

impl KeyRange {
    pub fn is_single(&self) -> bool {
        self.end.is_empty()
    }

    /// The exclusive upper bound, `None` for "to the end of the key space".
    pub fn upper(&self) -> Option<Vec<u8>> {
        match self.end.as_slice() {
            [] => {
                let mut next = self.key.clone();
                next.push(0);
                Some(next)
            }
            [0] => None,
            end => Some(end.to_vec()),
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.key.as_slice() && self.upper().is_none_or(|upper| key < upper.as_slice())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SortOrder {
    #[default]
    None,
    Ascend,
    Descend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub range: KeyRange,
    pub limit: i64,
    /// 0 for the current revision.
    pub revision: i64,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    pub keys_only: bool,
    pub count_only: bool,
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub lease: i64,
    pub prev_kv: bool,
    pub ignore_value: bool,
    pub ignore_lease: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRange {
    pub range: KeyRange,
    pub prev_kv: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareOp {
    Equal,
    Greater,
    Less,
    NotEqual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    Version(i64),
    Create(i64),
    Mod(i64),
    Value(Vec<u8>),
    Lease(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    pub range: KeyRange,
    pub op: CompareOp,
    pub target: CompareTarget,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Range(Range),
    Put(Put),
    DeleteRange(DeleteRange),
    Txn(Txn),
}

/// Whether any branch of `ops` (nested transactions included) puts a key.
pub fn puts_anything(ops: &[Op]) -> bool {
    ops.iter().any(|op| match op {
        Op::Put(_) => true,
        Op::Txn(t) => puts_anything(&t.success) || puts_anything(&t.failure),
        Op::Range(_) | Op::DeleteRange(_) => false,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

/// A command carried through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Put(Put),
    DeleteRange(DeleteRange),
    Txn(Txn),
    Compact {
        revision: i64,
    },
    /// `id` is chosen before proposing (by the client, or by the member that proposes).
    LeaseGrant {
        id: i64,
        ttl: i64,
    },
    /// Deletes the lease and every key attached to it, at one revision.
    LeaseRevoke {
        id: i64,
    },
    /// Raises (`true`) or clears the NOSPACE alarm, which refuses writes that add data.
    SetNoSpaceAlarm(bool),
    /// Records the client URLs member `id` serves at, for MemberList on every member (etcd
    /// publishes its member attributes through Raft the same way). Not a revision.
    PublishMember {
        id: u64,
        client_urls: Vec<String>,
    },
    /// The time short leases have left by the leader's clock, (id, milliseconds), so a member
    /// that takes over carries on their countdown instead of granting each a whole TTL again
    /// (etcd's lease checkpoints). Not a revision.
    LeaseCheckpoint {
        remaining_ms: Vec<(i64, u64)>,
    },
}

/// A granted lease. Its expiry deadline is not stored: the leader keeps it in memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub id: i64,
    /// Granted TTL in seconds.
    pub ttl: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    pub more: bool,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    Range(RangeResult),
    Put { prev: Option<KeyValue> },
    DeleteRange { deleted: i64, prevs: Vec<KeyValue> },
    Txn { succeeded: bool, results: Vec<OpResult> },
}

/// Why the store refused a command; each maps to etcd's error of the same meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MvccError {
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted { compact_revision: i64 },
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
}

/// The result of an applied command: a key-value operation's, or a lease's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Op(OpResult),
    LeaseGranted(Lease),
    LeaseRevoked { deleted: i64 },
    AlarmSet(bool),
    MemberPublished,
    LeasesCheckpointed,
}

/// What applying a [`Command`] answers: the store revision after it, and the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub revision: i64,
    pub result: Option<Result<Outcome, MvccError>>,
}
