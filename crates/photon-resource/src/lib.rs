//! The tenant resource API shape every application service shares (STYLE.md, "two shapes"):
//! resources owned by an org/project with Kubernetes-style metadata (`meta`), validated on
//! receipt with errors naming the field (`error`), stored as JSON in chainfire under one key
//! layout with optimistic concurrency on the key's revision (`store`), and followed by a
//! watch that survives chainfire restarts (`follow`) into a copy (`mirror`), which is what a service's in-memory
//! copy or a reconciler is fed from. A resource type is a spec and a `kind::Kind`; its store
//! operations (`kind::Resources`, keys in `layout`), values the server picks on create
//! (`assign`: addresses, ids, claimed without a lock), REST routes with IAM rules (`rest::Routes`) and the same
//! API as gRPC (`grpc`) follow.
//! `claim` holds a key for one node at a time (leases), for what only one node may do; `remote`
//! calls another service's resources as this service's account.

pub mod assign;
pub mod claim;
pub mod error;
pub mod follow;
pub mod grpc;
pub mod json;
pub mod kind;
pub mod layout;
pub mod meta;
pub mod mirror;
pub mod remote;
pub mod rest;
pub mod store;

pub use error::{FieldError, ResourceError};
pub use follow::{follow, Change};
pub use assign::{Assign, Assigning, Placing};
pub use kind::{check_name, check_range, Kind, Listing, NoSecrets, Resource, Resources, Sealer, REDACTED};
pub use layout::Layout;
pub use meta::{Metadata, Owner};
pub use mirror::Mirror;
pub use store::{ChainfireSection, Store, Tx, Versioned};
