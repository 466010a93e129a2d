//! Values the server picks for a resource being created — an address from a subnet, a MAC, a
//! VXLAN id — and checks that need what is stored (a subnet inside its VPC and apart from its
//! siblings). A service registers one `Assign` per kind that needs it
//! (`Resources::with_assigner`).
//!
//! No value is ever handed out twice: what an assigner picks is also a claim of the kind
//! (`Kind::unique`, `Kind::unique_in_parent`), created in the same transaction as the resource.
//! When two creates pick the same value at once, one transaction fails on the claim, and that
//! create assigns again from a fresh look (up to `ATTEMPTS` times) — compare-and-swap, with no
//! lock and no allocator that could lose its state.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::ResourceError;
use crate::kind::{Kind, Resources};
use crate::meta::Owner;

/// How many times one create assigns again after losing a claimed value to a concurrent one.
pub const ATTEMPTS: u32 = 32;

pub type Assigning<'a> = Pin<Box<dyn Future<Output = Result<(), ResourceError>> + Send + 'a>>;

/// Where the resource being created goes.
#[derive(Clone, Copy)]
pub struct Placing<'a> {
    pub resources: &'a Resources,
    pub owner: &'a Owner,
    pub parents: &'a [String],
}

impl Placing<'_> {
    /// Values of `K` claimed within the parent the resource goes under.
    pub async fn claimed_in_parent<K: Kind>(&self) -> Result<Vec<String>, ResourceError> {
        let prefix = self.resources.layout().parent_claims(self.owner, K::PATH, self.parents);
        self.resources.claimed(&prefix).await
    }

    /// Values of `K` claimed across every project.
    pub async fn claimed_unique<K: Kind>(&self) -> Result<Vec<String>, ResourceError> {
        let prefix = self.resources.layout().unique_claims(K::PATH);
        self.resources.claimed(&prefix).await
    }
}

/// Completes a spec of `K` on create: fills what the caller left for the server to pick, and
/// refuses (with an error naming the field) what conflicts with what is stored.
pub trait Assign<K: Kind>: Send + Sync + 'static {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut K::Spec) -> Assigning<'a>;

    /// Checks an update's spec (after `Kind::update`) against what is stored: what it names
    /// exists, say.
    fn updating<'a>(&'a self, _at: Placing<'a>, _spec: &'a mut K::Spec) -> Assigning<'a> {
        Box::pin(async { Ok(()) })
    }

    /// Checks a delete of the resource `name` (with its stored spec) against what is stored:
    /// refuses, naming why, while something else still needs it (a snapshot a clone reads).
    fn deleting<'a>(&'a self, _at: Placing<'a>, _name: &'a str, _spec: &'a K::Spec) -> Assigning<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// Each kind's assigner, by the kind's path.
#[derive(Clone, Default)]
pub(crate) struct Assigners(HashMap<&'static [&'static str], Arc<dyn Any + Send + Sync>>);

impl Assigners {
    pub(crate) fn insert<K: Kind>(&mut self, assigner: Arc<dyn Assign<K>>) {
        self.0.insert(K::PATH, Arc::new(assigner));
    }

    pub(crate) fn get<K: Kind>(&self) -> Option<Arc<dyn Assign<K>>> {
        self.0.get(K::PATH)?.downcast_ref::<Arc<dyn Assign<K>>>().cloned()
    }
}
