//! The desired dataplane, typed: every listener with what it needs to route a connection —
//! its spec, its rules by priority, and its load balancer's pools with their backends and
//! health check — built from the node's copy of the resources on every change. Listeners look
//! it up per connection or request, so a change applies to the next one without a reload.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use photon_resource::{Kind, Layout, Owner, Resource};
use photon_tls::seal::SealKey;
use serde::de::DeserializeOwned;

use crate::balance::Balancer;
use crate::model::backend::BackendSpec;
use crate::model::healthcheck::HealthCheckSpec;
use crate::model::listener::ListenerSpec;
use crate::model::loadbalancer::LoadBalancerSpec;
use crate::model::pool::PoolSpec;
use crate::model::rule::RuleSpec;
use crate::model::{Backend, HealthCheck, Listener, LoadBalancer, Pool, Rule};

#[derive(Default)]
pub struct Plan {
    /// By listener key (`Layout` key of the listener).
    pub listeners: BTreeMap<String, Arc<ListenerPlan>>,
    /// Every pool, by owner, load balancer and name (health checks run for pools no listener
    /// uses yet, so a backend is known up before traffic comes).
    pub pools: BTreeMap<(Owner, String, String), Arc<PoolPlan>>,
}

pub struct ListenerPlan {
    pub owner: Owner,
    pub loadbalancer: String,
    pub name: String,
    pub bind: SocketAddr,
    pub spec: ListenerSpec,
    /// By ascending priority, then name.
    pub rules: Vec<CompiledRule>,
    /// The load balancer's pools by name.
    pub pools: BTreeMap<String, Arc<PoolPlan>>,
    /// HTTPS: the TLS configuration with its certificates by SNI.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub metrics: super::metrics::ListenerMetrics,
}

/// A rule with its path regex compiled once per plan.
pub struct CompiledRule {
    pub name: String,
    pub spec: RuleSpec,
    /// Anchored: the whole path must match.
    pub path_regex: Option<regex::Regex>,
}

pub struct PoolPlan {
    pub name: String,
    pub spec: PoolSpec,
    /// By name; a backend's key (`BackendKey`) finds its live counters.
    pub backends: Vec<BackendPlan>,
    /// Its health checks by name.
    pub health: Vec<(String, HealthCheckSpec)>,
    pub balancer: Balancer,
}

pub struct BackendPlan {
    /// Unique on the node: owner, load balancer, pool and name.
    pub key: String,
    pub name: String,
    pub spec: BackendSpec,
    /// Its live counters (kept by key across plans), resolved once per plan.
    pub live: Arc<super::stats::BackendStats>,
    /// `address:port` as a URI authority, for L7 requests.
    pub authority: Option<http::uri::Authority>,
}

/// Backends tried for one connection or request at most.
pub const ATTEMPTS: usize = 3;

impl CompiledRule {
    /// Whether a request with `host` (lowercase, no port), `path` (no query) and headers read
    /// through `header` (the first field of a name) is this rule's.
    pub fn matches<'a>(&self, host: Option<&str>, path: &str, header: impl Fn(&str) -> Option<&'a [u8]>) -> bool {
        let m = &self.spec.matches;
        if let Some(want) = &m.host {
            if !host.is_some_and(|host| crate::model::listener::host_matches(want, host)) {
                return false;
            }
        }
        if m.path_prefix.as_ref().is_some_and(|prefix| !path.starts_with(prefix.as_str())) {
            return false;
        }
        if self.path_regex.as_ref().is_some_and(|re| !re.is_match(path)) {
            return false;
        }
        m.headers.iter().all(|(name, value)| header(name).is_some_and(|v| v == value.as_bytes()))
    }
}

/// A `Host` value's name without its port: `[v6]:port`, `name:port` or `name` (not lowercased).
pub fn host_without_port(raw: &str) -> &str {
    let raw = raw.trim();
    match raw.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => raw.rsplit_once(':').map_or(raw, |(name, _)| name),
    }
}

impl PoolPlan {
    /// What the balancer sees of each backend now: its weight (ramped up by slow start), in
    /// flight, and whether it may take new traffic (enabled, up, not in `tried`).
    pub fn candidates(&self, tried: &[usize]) -> Vec<crate::balance::Candidate> {
        let mut candidates = Vec::with_capacity(self.backends.len());
        self.candidates_into(tried, &mut candidates);
        candidates
    }

    /// [`PoolPlan::candidates`] into `out` (cleared first), for callers that reuse it.
    pub fn candidates_into(&self, tried: &[usize], out: &mut Vec<crate::balance::Candidate>) {
        out.clear();
        out.extend(self.backends.iter().enumerate().map(|(i, b)| {
            let live = &b.live;
            crate::balance::Candidate {
                weight: live.ramped(b.spec.weight, self.spec.slow_start_ms),
                active: live.active.load(std::sync::atomic::Ordering::Relaxed),
                eligible: b.spec.admin_state == crate::model::backend::AdminState::Enabled && live.up() && !tried.contains(&i),
            }
        }));
    }
}

impl ListenerPlan {
    /// The 413 answer's message.
    pub fn body_too_large(&self) -> String {
        format!("the body is larger than the {} bytes allowed", self.spec.max_body_bytes)
    }

    pub fn default_pool(&self) -> Option<&Arc<PoolPlan>> {
        self.spec.default_pool.as_ref().and_then(|name| self.pools.get(name))
    }
}

/// Every resource of `K` in `items` (keys from `layout`), by their names (parents then own).
fn of_kind<'a, K: Kind>(
    layout: &Layout,
    items: &'a BTreeMap<String, Vec<u8>>,
) -> impl Iterator<Item = (String, Owner, Vec<String>, Resource<K::Spec>)> + 'a
where
    K::Spec: DeserializeOwned,
{
    let layout = layout.clone();
    items.iter().filter_map(move |(key, value)| {
        let (owner, path, names) = layout.parse(key)?;
        if path != K::PATH {
            return None;
        }
        let names: Vec<String> = names.into_iter().map(str::to_string).collect();
        match serde_json::from_slice::<Resource<K::Spec>>(value) {
            Ok(resource) => Some((key.clone(), owner, names, resource)),
            Err(e) => {
                tracing::warn!(%key, error = %e, "a stored resource does not decode; ignored");
                None
            }
        }
    })
}

impl Plan {
    /// The plan of `items`; private keys unsealed with `keys`.
    pub fn build(
        layout: &Layout,
        items: &BTreeMap<String, Vec<u8>>,
        keys: &SealKey,
        metrics: &super::metrics::Metrics,
        stats: &super::stats::Stats,
    ) -> Plan {
        type LbKey = (Owner, String);
        let loadbalancers: BTreeMap<LbKey, LoadBalancerSpec> =
            of_kind::<LoadBalancer>(layout, items).map(|(_, owner, names, r)| ((owner, names[0].clone()), r.spec)).collect();
        let mut backends: BTreeMap<(LbKey, String), Vec<BackendPlan>> = BTreeMap::new();
        for (key, owner, names, r) in of_kind::<Backend>(layout, items) {
            let live = stats.of(&key);
            let authority = std::net::SocketAddr::new(r.spec.address, r.spec.port).to_string().parse().ok();
            let plan = BackendPlan { key, name: names[2].clone(), spec: r.spec, live, authority };
            backends.entry(((owner, names[0].clone()), names[1].clone())).or_default().push(plan);
        }
        let mut checks: BTreeMap<(LbKey, String), Vec<(String, HealthCheckSpec)>> = BTreeMap::new();
        for (_, owner, names, r) in of_kind::<HealthCheck>(layout, items) {
            checks.entry(((owner, names[0].clone()), names[1].clone())).or_default().push((names[2].clone(), r.spec));
        }
        let mut pools: BTreeMap<LbKey, BTreeMap<String, Arc<PoolPlan>>> = BTreeMap::new();
        for (_, owner, names, r) in of_kind::<Pool>(layout, items) {
            let lb = (owner, names[0].clone());
            let at = (lb.clone(), names[1].clone());
            let members = backends.remove(&at).unwrap_or_default();
            let member_names: Vec<String> = members.iter().map(|b| b.name.clone()).collect();
            let plan = PoolPlan {
                name: names[1].clone(),
                balancer: Balancer::new(r.spec.algorithm, &member_names),
                spec: r.spec,
                backends: members,
                health: checks.remove(&at).unwrap_or_default(),
            };
            pools.entry(lb).or_default().insert(names[1].clone(), Arc::new(plan));
        }
        let mut rules: BTreeMap<(LbKey, String), Vec<(String, RuleSpec)>> = BTreeMap::new();
        for (_, owner, names, r) in of_kind::<Rule>(layout, items) {
            rules.entry(((owner, names[0].clone()), names[1].clone())).or_default().push((names[2].clone(), r.spec));
        }
        let mut listeners = BTreeMap::new();
        for (key, owner, names, r) in of_kind::<Listener>(layout, items) {
            let lb = (owner.clone(), names[0].clone());
            // A listener whose load balancer is gone is being deleted with it.
            let Some(spec) = loadbalancers.get(&lb) else { continue };
            let ip = spec.vip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let mut own_rules = rules.remove(&(lb.clone(), names[1].clone())).unwrap_or_default();
            own_rules.sort_by(|a, b| (a.1.priority, &a.0).cmp(&(b.1.priority, &b.0)));
            let own_rules = own_rules
                .into_iter()
                .filter_map(|(name, spec)| {
                    let path_regex = match &spec.matches.path_regex {
                        None => None,
                        // Validated on receipt; a pattern that no longer compiles drops the rule.
                        Some(pattern) => match regex::Regex::new(&format!("^(?:{pattern})$")) {
                            Ok(re) => Some(re),
                            Err(e) => {
                                tracing::warn!(rule = %name, error = %e, "a rule's path_regex does not compile; rule skipped");
                                return None;
                            }
                        },
                    };
                    Some(CompiledRule { name, spec, path_regex })
                })
                .collect();
            let tls = if r.spec.protocol == crate::model::listener::Protocol::Https {
                super::sni::server_config(&key, &r.spec.certificates, keys)
            } else {
                None
            };
            let labels = super::metrics::ListenerLabels {
                project: format!("{}/{}", owner.org, owner.project),
                loadbalancer: names[0].clone(),
                listener: names[1].clone(),
            };
            let plan = ListenerPlan {
                metrics: metrics.listener(&labels),
                tls,
                owner,
                loadbalancer: names[0].clone(),
                name: names[1].clone(),
                bind: SocketAddr::new(ip, r.spec.port),
                spec: r.spec,
                rules: own_rules,
                pools: pools.get(&lb).cloned().unwrap_or_default(),
            };
            listeners.insert(key, Arc::new(plan));
        }
        let pools = pools
            .into_iter()
            .flat_map(|((owner, lb), by_name)| by_name.into_iter().map(move |(name, pool)| ((owner.clone(), lb.clone(), name), pool)))
            .collect();
        Plan { listeners, pools }
    }

    /// Every backend of every pool, once.
    pub fn backends(&self) -> impl Iterator<Item = (&Arc<PoolPlan>, &BackendPlan)> {
        self.pools.values().flat_map(|pool| pool.backends.iter().map(move |b| (pool, b)))
    }
}
