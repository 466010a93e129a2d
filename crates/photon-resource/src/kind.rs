//! A resource type described once — its name, its place under its parents, how its spec is
//! checked — from which its keys in chainfire (`Layout`), its store operations (`Resources`)
//! and its REST routes with their IAM rules (`crate::rest`) follow. A service's resource is then
//! a spec type and a `Kind` impl, not another copy of the plumbing.
//!
//! Kinds nest (a listener lives under a load balancer, a rule under a listener): deleting a
//! resource deletes everything under it in the same transaction, and nothing is created under
//! a parent that does not exist.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::assign::{Assign, Assigners, Placing, ATTEMPTS};
use crate::error::{FieldError, ResourceError};
use crate::layout::Layout;
use crate::meta::{Metadata, Owner};
use crate::store::{Store, Tx, Versioned};

pub trait Kind: Send + Sync + 'static {
    type Spec: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;
    /// Singular, in messages ("load balancer").
    const NAME: &'static str;
    /// The plurals from the outermost ancestor down to this kind
    /// (`["loadbalancers", "listeners"]`): path segments of its REST routes and its keys.
    const PATH: &'static [&'static str];

    /// Whether deleting a resource deletes what lies under it (true), or is refused while
    /// anything does (false: a volume with snapshots, whose loss could not be undone).
    const CASCADE: bool = true;

    /// Checks a spec on receipt; field paths start at `spec`.
    fn validate(spec: &Self::Spec) -> Result<(), FieldError>;

    /// Makes a validated spec ready to store: values the server assigns filled in, secrets in
    /// it sealed by `sealer`. `current` is the stored spec an update replaces (a secret sent
    /// back redacted keeps its sealed value).
    fn seal(_spec: &mut Self::Spec, _current: Option<&Self::Spec>, _sealer: &dyn Sealer) -> Result<(), FieldError> {
        Ok(())
    }

    /// What a reader is shown of a stored spec: sealed secrets replaced by `REDACTED`.
    fn redact(_spec: &mut Self::Spec) {}

    /// Values no other resource of this kind may hold, whatever its project (a load balancer's
    /// address): claimed with the resource, in the same transaction. Only top-level kinds claim
    /// (a cascading delete removes children without reading them).
    fn unique(_spec: &Self::Spec) -> Vec<String> {
        Vec::new()
    }

    /// Values no other resource of this kind under the same parent may hold (two listeners of
    /// one load balancer on one port, two ports of a subnet on one address), claimed the same
    /// way and deleted with the parent (or any ancestor).
    fn unique_in_parent(_spec: &Self::Spec) -> Vec<String> {
        Vec::new()
    }

    /// Checks an update's spec against the stored one, field paths starting at `spec`: values
    /// that cannot change are refused, values the server assigned and the caller left out are
    /// kept.
    fn update(_new: &mut Self::Spec, _current: &Self::Spec) -> Result<(), FieldError> {
        Ok(())
    }
}

/// What a sealed secret reads as through the API; sent back in an update, it keeps the stored
/// secret.
pub const REDACTED: &str = "(sealed)";

/// Seals secrets before they are stored (a service's master key, `photon_tls::seal`).
pub trait Sealer: Send + Sync {
    fn seal(&self, plain: &[u8]) -> Result<String, String>;
}

/// For kinds without secrets.
pub struct NoSecrets;

impl Sealer for NoSecrets {
    fn seal(&self, _plain: &[u8]) -> Result<String, String> {
        Err("this service keeps no secrets".into())
    }
}

/// A stored resource: metadata, the names of its parents (outermost first), the spec (what
/// its owner asks for) and, for kinds a controller realises (a VM), the status it observed.
/// The API never takes a status from a caller: an update of the spec keeps it, and only the
/// service's own controllers write it (Kubernetes' status subresource).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resource<S> {
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    pub spec: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// The kind an `AlreadyExists` names when a claimed value is taken.
const CLAIMED: &str = "claimed value";

/// `value` within `range`, or an error naming `field`.
pub fn check_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), FieldError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("{value} is out of range: {} to {}", range.start(), range.end())))
    }
}

/// A resource name: a DNS label (lower-case letters, digits, inner hyphens, 1–63), so it is
/// safe in a key, a URL and a host name alike.
pub fn check_name(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("{name:?} is not a valid name: 1 to 63 lower-case letters, digits and inner hyphens")))
    }
}

/// One page of a listing and the token of the next.
#[derive(Debug, Clone, Serialize)]
pub struct Listing<S> {
    pub items: Vec<Resource<S>>,
    pub next_page_token: Option<String>,
}

/// A service's resources in chainfire, every kind through the same operations.
#[derive(Clone)]
pub struct Resources {
    store: Store,
    layout: Layout,
    sealer: std::sync::Arc<dyn Sealer>,
    assigners: Assigners,
}

impl Resources {
    pub fn new(store: Store, layout: Layout) -> Self {
        Self { store, layout, sealer: std::sync::Arc::new(NoSecrets), assigners: Assigners::default() }
    }

    /// Secrets of the service's kinds are sealed by `sealer`.
    pub fn with_sealer(mut self, sealer: std::sync::Arc<dyn Sealer>) -> Self {
        self.sealer = sealer;
        self
    }

    /// Values of kind `K` are completed (picked, checked against what is stored) on create by
    /// `assigner`.
    pub fn with_assigner<K: Kind>(mut self, assigner: impl Assign<K>) -> Self {
        self.assigners.insert::<K>(std::sync::Arc::new(assigner));
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The parent of a resource of `K` under `parents` must exist (named in errors).
    fn parent_key<K: Kind>(&self, owner: &Owner, parents: &[String]) -> Option<(String, String)> {
        let depth = K::PATH.len().checked_sub(1)?;
        if depth == 0 {
            return None;
        }
        let key = self.layout.key(owner, &K::PATH[..depth], &parents[..depth - 1], &parents[depth - 1]);
        Some((key, parents[depth - 1].clone()))
    }

    fn check_parents<K: Kind>(parents: &[String]) -> Result<(), ResourceError> {
        if parents.len() + 1 != K::PATH.len() {
            return Err(ResourceError::Backend(format!("{} takes {} parent names", K::NAME, K::PATH.len() - 1)));
        }
        for (i, parent) in parents.iter().enumerate() {
            check_name(K::PATH[i], parent)?;
        }
        Ok(())
    }

    /// Creates a resource; values the kind's assigner picks are assigned again if a concurrent
    /// create took them first (`crate::assign`).
    pub async fn create<K: Kind>(
        &self,
        owner: &Owner,
        parents: &[String],
        name: &str,
        spec: K::Spec,
    ) -> Result<Resource<K::Spec>, ResourceError> {
        Self::check_parents::<K>(parents)?;
        check_name("name", name)?;
        let assigner = self.assigners.get::<K>();
        let mut attempt = 0;
        loop {
            let mut spec = spec.clone();
            let mut assigned = false;
            if let Some(assigner) = &assigner {
                let before = serde_json::to_value(&spec).ok();
                assigner.assign(Placing { resources: self, owner, parents }, &mut spec).await?;
                assigned = before != serde_json::to_value(&spec).ok();
            }
            match self.try_create::<K>(owner, parents, name, spec).await {
                Err(ResourceError::AlreadyExists { kind: CLAIMED, .. }) if assigned && attempt + 1 < ATTEMPTS => attempt += 1,
                outcome => return outcome,
            }
        }
    }

    async fn try_create<K: Kind>(
        &self,
        owner: &Owner,
        parents: &[String],
        name: &str,
        spec: K::Spec,
    ) -> Result<Resource<K::Spec>, ResourceError> {
        K::validate(&spec)?;
        let mut spec = spec;
        K::seal(&mut spec, None, self.sealer.as_ref())?;
        let key = self.layout.key(owner, K::PATH, parents, name);
        let mut resource = Resource { metadata: Metadata::new(name, owner), parents: parents.to_vec(), spec, status: None };
        let mut tx = Tx::new().create(&key, &resource)?;
        let parent = self.parent_key::<K>(owner, parents);
        if let Some((parent_key, _)) = &parent {
            tx = tx.when_present(parent_key);
        }
        let claims = K::unique(&resource.spec);
        debug_assert!(claims.is_empty() || K::PATH.len() == 1, "only top-level kinds claim values across projects");
        let mut names = parents.to_vec();
        names.push(name.to_string());
        let claim_keys = self.layout.claims_of(owner, K::PATH, &names, &claims, &K::unique_in_parent(&resource.spec));
        for claim in &claim_keys {
            tx = tx.create(claim, &key)?;
        }
        match self.store.commit(tx).await? {
            Some(revision) => {
                resource.metadata.resource_version = revision;
                K::redact(&mut resource.spec);
                Ok(resource)
            }
            None => {
                // Either the name is taken, a value is claimed or the parent is gone: say which.
                if self.store.get::<serde_json::Value>(&key).await?.is_some() {
                    return Err(ResourceError::AlreadyExists { kind: K::NAME, name: name.into() });
                }
                self.check_claims(&claim_keys, &key).await?;
                let (_, parent_name) = parent.unwrap_or_default();
                Err(ResourceError::NotFound { kind: "parent", name: parent_name })
            }
        }
    }

    /// The values claimed under a claims prefix (`Layout::parent_claims`, `unique_claims`).
    pub(crate) async fn claimed(&self, prefix: &str) -> Result<Vec<String>, ResourceError> {
        let held = self.store.list_all::<String>(prefix).await?;
        Ok(held.into_iter().filter_map(|h| h.key.strip_prefix(prefix).map(str::to_string)).collect())
    }

    /// A claim of `claims` another resource holds, as the error that says so (naming the value).
    async fn check_claims(&self, claims: &[String], key: &str) -> Result<(), ResourceError> {
        for claim in claims {
            let holder = self.store.get::<String>(claim).await?;
            if holder.is_some_and(|h| h.value != key) {
                // The holder is not named: it may be another project's.
                let value = claim.rsplit('/').next().unwrap_or(claim);
                return Err(ResourceError::AlreadyExists { kind: CLAIMED, name: value.to_string() });
            }
        }
        Ok(())
    }

    /// A resource as its readers see it (secrets redacted).
    pub async fn get<K: Kind>(&self, owner: &Owner, parents: &[String], name: &str) -> Result<Resource<K::Spec>, ResourceError> {
        let mut resource = self.stored::<K>(owner, parents, name).await?;
        K::redact(&mut resource.spec);
        Ok(resource)
    }

    /// A resource as stored (secrets sealed).
    async fn stored<K: Kind>(&self, owner: &Owner, parents: &[String], name: &str) -> Result<Resource<K::Spec>, ResourceError> {
        Self::check_parents::<K>(parents)?;
        if check_name("name", name).is_err() {
            // A name that could not have been created (an encoded slash, say) names nothing.
            return Err(ResourceError::NotFound { kind: K::NAME, name: name.into() });
        }
        let key = self.layout.key(owner, K::PATH, parents, name);
        match self.store.get::<Resource<K::Spec>>(&key).await? {
            Some(found) => Ok(with_version(found)),
            None => Err(ResourceError::NotFound { kind: K::NAME, name: name.into() }),
        }
    }

    pub async fn list<K: Kind>(
        &self,
        owner: &Owner,
        parents: &[String],
        page_token: Option<&str>,
        limit: usize,
    ) -> Result<Listing<K::Spec>, ResourceError> {
        Self::check_parents::<K>(parents)?;
        let prefix = self.layout.collection(owner, K::PATH, parents);
        let after = match page_token {
            Some(token) => {
                check_name("page_token", token)?;
                Some(format!("{prefix}{token}"))
            }
            None => None,
        };
        let page = self.store.list::<Resource<K::Spec>>(&prefix, after.as_deref(), limit).await?;
        let next_page_token = page.next.and_then(|key| key.strip_prefix(&prefix).map(str::to_string));
        let items = page.items.into_iter().map(with_version).map(|mut r| {
            K::redact(&mut r.spec);
            r
        });
        Ok(Listing { items: items.collect(), next_page_token })
    }

    /// Every resource of `K` under `parents` (small sets: a pool's backends).
    pub async fn list_all<K: Kind>(&self, owner: &Owner, parents: &[String]) -> Result<Vec<Resource<K::Spec>>, ResourceError> {
        Self::check_parents::<K>(parents)?;
        let prefix = self.layout.collection(owner, K::PATH, parents);
        let items = self.store.list_all::<Resource<K::Spec>>(&prefix).await?;
        let items = items.into_iter().map(with_version).map(|mut r| {
            K::redact(&mut r.spec);
            r
        });
        Ok(items.collect())
    }

    /// Replaces the spec; if `expected` is given the resource must still be at that version.
    pub async fn update<K: Kind>(
        &self,
        owner: &Owner,
        parents: &[String],
        name: &str,
        spec: K::Spec,
        expected: Option<i64>,
    ) -> Result<Resource<K::Spec>, ResourceError> {
        K::validate(&spec)?;
        let current = self.stored::<K>(owner, parents, name).await?;
        let version = current.metadata.resource_version;
        if let Some(expected) = expected.filter(|e| *e != version) {
            return Err(ResourceError::Conflict { kind: K::NAME, name: name.into(), expected });
        }
        let mut spec = spec;
        K::update(&mut spec, &current.spec)?;
        K::validate(&spec)?;
        if let Some(assigner) = self.assigners.get::<K>() {
            assigner.updating(Placing { resources: self, owner, parents }, &mut spec).await?;
        }
        K::seal(&mut spec, Some(&current.spec), self.sealer.as_ref())?;
        let mut names = parents.to_vec();
        names.push(name.to_string());
        let old_claims = self.layout.claims_of(owner, K::PATH, &names, &K::unique(&current.spec), &K::unique_in_parent(&current.spec));
        let new_claims = self.layout.claims_of(owner, K::PATH, &names, &K::unique(&spec), &K::unique_in_parent(&spec));
        let mut resource = current;
        resource.spec = spec;
        resource.metadata.touch();
        resource.metadata.resource_version = 0;
        let key = self.layout.key(owner, K::PATH, parents, name);
        let mut tx = Tx::new().update(&key, &resource, version)?;
        for claim in old_claims.iter().filter(|c| !new_claims.contains(c)) {
            tx = tx.remove(claim);
        }
        let added: Vec<String> = new_claims.iter().filter(|c| !old_claims.contains(c)).cloned().collect();
        for claim in &added {
            tx = tx.create(claim, &key)?;
        }
        let committed = self.store.commit(tx).await?;
        if committed.is_none() {
            self.check_claims(&added, &key).await?;
        }
        match committed {
            Some(revision) => {
                resource.metadata.resource_version = revision;
                K::redact(&mut resource.spec);
                Ok(resource)
            }
            None => Err(ResourceError::Conflict { kind: K::NAME, name: name.into(), expected: version }),
        }
    }

    /// Deletes the resource and everything under it, in one transaction.
    pub async fn delete<K: Kind>(&self, owner: &Owner, parents: &[String], name: &str) -> Result<(), ResourceError> {
        let current = self.stored::<K>(owner, parents, name).await?;
        let key = self.layout.key(owner, K::PATH, parents, name);
        let mut names = parents.to_vec();
        names.push(name.to_string());
        if let Some(assigner) = self.assigners.get::<K>() {
            assigner.deleting(Placing { resources: self, owner, parents }, name, &current.spec).await?;
        }
        if !K::CASCADE {
            if let Some(held) = self.held_under(owner, K::PATH, &names).await? {
                return Err(ResourceError::Precondition(format!(
                    "{} {name} still holds {held}; delete those first",
                    K::NAME
                )));
            }
        }
        let mut tx = self.layout.cascade(Tx::new().delete(&key, current.metadata.resource_version), owner, K::PATH, &names);
        for claim in self.layout.claims_of(owner, K::PATH, &names, &K::unique(&current.spec), &K::unique_in_parent(&current.spec)) {
            tx = tx.remove(&claim);
        }
        match self.store.commit(tx).await? {
            Some(_) => Ok(()),
            None => Err(ResourceError::Conflict {
                kind: K::NAME,
                name: name.into(),
                expected: current.metadata.resource_version,
            }),
        }
    }

}

impl Resources {
    /// The kind (its plural) of some resource under the one of `path` named `names`, if any.
    async fn held_under(&self, owner: &Owner, path: &[&str], names: &[String]) -> Result<Option<&'static str>, ResourceError> {
        for kind in self.layout.descendants(path) {
            let prefix = self.layout.collection(owner, kind, names);
            if !self.store.list::<serde_json::Value>(&prefix, None, 1).await?.items.is_empty() {
                return Ok(kind.last().copied());
            }
        }
        Ok(None)
    }
}

fn with_version<S>(found: Versioned<Resource<S>>) -> Resource<S> {
    let mut resource = found.value;
    resource.metadata.resource_version = found.version;
    resource
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels() {
        for good in ["a", "web-1", "0"] {
            assert!(check_name("name", good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a/b", "a.b", "a b", &"x".repeat(64)] {
            assert!(check_name("name", bad).is_err(), "{bad}");
        }
    }
}
