//! Where a service's resources and their claims live in chainfire: one key layout, from which
//! a listing of one kind, a cascading delete and a claim's key all follow.

use crate::meta::Owner;
use crate::store::Tx;

/// Where a service's resources live in chainfire:
/// `<root>/r/<org>/<project>/<plural>[.<plural>...]/<parent names.../><name>`. Kinds of
/// different depth never share a prefix (`loadbalancers/` against `loadbalancers.listeners/`),
/// so a listing of one kind never sees another.
///
/// Claims (values one resource holds alone, `Kind::unique` and `Kind::unique_in_parent`) live
/// beside them: `<root>/u/<plural>[.<plural>...]/<value>` across every project, and
/// `<root>/s/<org>/<project>/<plural>/<name>[/<plural>/<name>...]/<plural>/<value>` within one
/// parent, so every claim made under a resource, at any depth, shares that resource's prefix
/// and is deleted with it.
#[derive(Debug, Clone)]
pub struct Layout {
    root: String,
    /// Every kind's `PATH`, for cascading deletes.
    kinds: Vec<&'static [&'static str]>,
}

impl Layout {
    /// `root` without a trailing slash (`/photoncloud/fiberlb`); `kinds` every kind's `PATH`.
    pub fn new(root: impl Into<String>, kinds: &[&'static [&'static str]]) -> Self {
        Self { root: root.into(), kinds: kinds.to_vec() }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Everything of every project (what a node's dataplane follows).
    pub fn prefix(&self) -> String {
        format!("{}/r/", self.root)
    }

    /// Where resources of `path` under `parents` are listed.
    pub fn collection(&self, owner: &Owner, path: &[&str], parents: &[String]) -> String {
        let mut key = format!("{}/r/{}/{}/{}/", self.root, owner.org, owner.project, path.join("."));
        for parent in parents {
            key.push_str(parent);
            key.push('/');
        }
        key
    }

    pub fn key(&self, owner: &Owner, path: &[&str], parents: &[String], name: &str) -> String {
        self.collection(owner, path, parents) + name
    }

    /// A key split back into its owner, the kind's path and the names (parents, then its own).
    pub fn parse<'k>(&self, key: &'k str) -> Option<(Owner, Vec<&'k str>, Vec<&'k str>)> {
        let rest = key.strip_prefix(&self.root)?.strip_prefix("/r/")?;
        let mut parts = rest.split('/');
        let (org, project, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path: Vec<&str> = path.split('.').collect();
        let names: Vec<&str> = parts.collect();
        (names.len() == path.len()).then(|| (Owner::new(org, project), path, names))
    }

    /// Where kind `path`'s claims across every project are kept (the value of each: the
    /// claiming resource's key).
    pub fn unique_claims(&self, path: &[&str]) -> String {
        format!("{}/u/{}/", self.root, path.join("."))
    }

    /// The prefix of every claim made under the resource of `path` named `names` (parents,
    /// then its own), at any depth.
    fn scope(&self, owner: &Owner, path: &[&str], names: &[String]) -> String {
        let mut key = format!("{}/s/{}/{}/", self.root, owner.org, owner.project);
        for (plural, name) in path.iter().zip(names) {
            key.push_str(plural);
            key.push('/');
            key.push_str(name);
            key.push('/');
        }
        key
    }

    /// Where claims of kind `path` within the parent named `parents` are kept.
    pub fn parent_claims(&self, owner: &Owner, path: &[&str], parents: &[String]) -> String {
        let depth = path.len().saturating_sub(1);
        format!("{}{}/", self.scope(owner, &path[..depth], parents), path[depth])
    }

    /// Every claim key of a resource of `path` named `names` (parents, then its own).
    pub(crate) fn claims_of(&self, owner: &Owner, path: &[&str], names: &[String], unique: &[String], in_parent: &[String]) -> Vec<String> {
        let mut keys: Vec<String> = unique.iter().map(|v| format!("{}{v}", self.unique_claims(path))).collect();
        if path.len() > 1 {
            let base = self.parent_claims(owner, path, &names[..names.len() - 1]);
            keys.extend(in_parent.iter().map(|v| format!("{base}{v}")));
        }
        keys
    }

    /// The kinds that live under kind `path` (at any depth).
    pub(crate) fn descendants<'a>(&'a self, path: &'a [&str]) -> impl Iterator<Item = &'static [&'static str]> + 'a {
        self.kinds.iter().copied().filter(move |kind| kind.len() > path.len() && kind.starts_with(path))
    }

    /// The deletes that take everything under one resource with it: its descendants and every
    /// claim made under it.
    pub(crate) fn cascade(&self, mut tx: Tx, owner: &Owner, path: &[&str], names: &[String]) -> Tx {
        tx = tx.delete_prefix(&self.scope(owner, path, names));
        for kind in self.descendants(path) {
            tx = tx.delete_prefix(&self.collection(owner, kind, names));
        }
        tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_kinds_never_share_a_prefix_and_parse_back() {
        let layout = Layout::new("/photoncloud/lb", &[&["lbs"], &["lbs", "listeners"], &["lbs", "listeners", "rules"]]);
        let owner = Owner::new("acme", "web");
        let lb = layout.key(&owner, &["lbs"], &[], "front");
        let listener = layout.key(&owner, &["lbs", "listeners"], &["front".into()], "http");
        assert_eq!(lb, "/photoncloud/lb/r/acme/web/lbs/front");
        assert_eq!(listener, "/photoncloud/lb/r/acme/web/lbs.listeners/front/http");
        assert!(!listener.starts_with(&layout.collection(&owner, &["lbs"], &[])));
        let (parsed_owner, path, names) = layout.parse(&listener).unwrap();
        assert_eq!((parsed_owner, path, names), (owner.clone(), vec!["lbs", "listeners"], vec!["front", "http"]));
        assert!(layout.parse("/photoncloud/lb/r/acme/web/lbs.listeners/front").is_none());
        assert!(layout.parse("/elsewhere/r/acme/web/lbs/front").is_none());
    }

    #[test]
    fn claims_within_a_parent_share_the_prefix_of_every_ancestor() {
        let layout = Layout::new("/p", &[&["vpcs"], &["vpcs", "subnets"], &["vpcs", "subnets", "ports"]]);
        let owner = Owner::new("acme", "web");
        let names: Vec<String> = vec!["v".into(), "s".into(), "p".into()];
        let claims = layout.claims_of(&owner, &["vpcs", "subnets", "ports"], &names, &[], &["10.0.0.5".into()]);
        assert_eq!(claims, vec!["/p/s/acme/web/vpcs/v/subnets/s/ports/10.0.0.5".to_string()]);
        // A subnet's and a VPC's cascades both take the port's claim.
        for depth in [1, 2] {
            let scope = layout.scope(&owner, &["vpcs", "subnets"][..depth], &names[..depth]);
            assert!(claims[0].starts_with(&scope), "{scope}");
        }
        // A sibling subnet's scope does not.
        let other = layout.scope(&owner, &["vpcs", "subnets"], &["v".into(), "s2".into()]);
        assert!(!claims[0].starts_with(&other));
        assert_eq!(layout.claims_of(&owner, &["vpcs"], &names[..1], &["7".into()], &[]), vec!["/p/u/vpcs/7".to_string()]);
    }
}
