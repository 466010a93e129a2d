//! Pure start decisions for `photonctl up`: given what every service is doing, may this one
//! start now, must it wait, or will it never start? No I/O here; tested event by event.

use std::time::Duration;

use crate::catalog::{Dep, ServiceEntry};

/// What a service is doing, as far as its dependents care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Its binary was not found: it will not run.
    Missing,
    /// Not launched yet.
    Pending,
    /// Launched `for_how_long` ago (since its first launch) and not yet healthy.
    Starting { for_how_long: Duration },
    /// Answering `/health` with 200.
    Healthy,
    /// Will never be started; the reason says why.
    Blocked(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Start,
    Wait,
    Block(String),
}

/// Decides for `entry`, looking up each dependency's phase with `phase_of`. `timeout` is how
/// long a dependency may take to become healthy.
pub fn decide(entry: &ServiceEntry, phase_of: impl Fn(&str) -> Phase, timeout: Duration) -> Decision {
    let mut wait = false;
    for (kind, dep) in entry.deps {
        match (kind, phase_of(dep)) {
            (_, Phase::Healthy) => {}
            (Dep::Requires, Phase::Missing) => {
                return Decision::Block(format!("it requires {dep}, whose binary {dep}-server was not found"));
            }
            (Dep::Requires, Phase::Blocked(_)) => {
                return Decision::Block(format!("it requires {dep}, which was not started"));
            }
            (Dep::Requires, Phase::Starting { for_how_long }) if for_how_long >= timeout => {
                return Decision::Block(format!(
                    "it requires {dep}, which did not become healthy within {}s",
                    timeout.as_secs()
                ));
            }
            (Dep::Requires, Phase::Pending | Phase::Starting { .. }) => wait = true,
            (Dep::Wants | Dep::After, Phase::Missing | Phase::Blocked(_)) => {}
            (Dep::Wants | Dep::After, Phase::Starting { for_how_long }) if for_how_long >= timeout => {}
            (Dep::Wants | Dep::After, Phase::Pending | Phase::Starting { .. }) => wait = true,
        }
    }
    if wait {
        Decision::Wait
    } else {
        Decision::Start
    }
}

/// Delay before restarting a service that has crashed `crashes` times in a row: 1 s, 2 s,
/// 4 s, ... capped at 30 s, like systemd's `Restart=on-failure` with a growing `RestartSec`.
pub fn restart_backoff(crashes: u32) -> Duration {
    Duration::from_secs(1u64 << crashes.saturating_sub(1).min(5)).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CATALOG;

    fn entry(name: &str) -> &'static ServiceEntry {
        CATALOG.iter().find(|e| e.name == name).unwrap()
    }

    const T: Duration = Duration::from_secs(60);

    fn starting(secs: u64) -> Phase {
        Phase::Starting { for_how_long: Duration::from_secs(secs) }
    }

    #[test]
    fn chainfire_starts_at_once() {
        assert_eq!(decide(entry("chainfire"), |_| Phase::Pending, T), Decision::Start);
    }

    #[test]
    fn requires_waits_for_healthy_then_starts() {
        let flaredb = entry("flaredb");
        assert_eq!(decide(flaredb, |_| Phase::Pending, T), Decision::Wait);
        assert_eq!(decide(flaredb, |_| starting(5), T), Decision::Wait);
        assert_eq!(decide(flaredb, |_| Phase::Healthy, T), Decision::Start);
    }

    #[test]
    fn requires_blocks_when_the_dependency_never_becomes_healthy() {
        match decide(entry("flaredb"), |_| starting(60), T) {
            Decision::Block(reason) => assert!(reason.contains("chainfire") && reason.contains("60s"), "{reason}"),
            other => panic!("expected a block, got {other:?}"),
        }
    }

    #[test]
    fn requires_blocks_on_missing_or_blocked_dependencies() {
        assert!(
            matches!(decide(entry("flaredb"), |_| Phase::Missing, T), Decision::Block(r) if r.contains("chainfire-server"))
        );
        assert!(
            matches!(decide(entry("iam"), |_| Phase::Blocked("x".into()), T), Decision::Block(r) if r.contains("flaredb"))
        );
    }

    #[test]
    fn wants_waits_but_never_blocks() {
        let prismnet = entry("prismnet");
        let phases = |iam: Phase| {
            move |name: &str| {
                if name == "iam" {
                    iam.clone()
                } else {
                    Phase::Healthy
                }
            }
        };
        assert_eq!(decide(prismnet, phases(starting(1)), T), Decision::Wait);
        assert_eq!(decide(prismnet, phases(starting(61)), T), Decision::Start);
        assert_eq!(decide(prismnet, phases(Phase::Missing), T), Decision::Start);
        assert_eq!(decide(prismnet, phases(Phase::Blocked("no".into())), T), Decision::Start);
    }

    #[test]
    fn the_application_tier_starts_after_iam() {
        for name in ["plasmavmc", "prismnet", "flashdns", "fiberlb", "lightningstor", "k8shost"] {
            let phase_of = |dep: &str| {
                if dep == "iam" {
                    Phase::Pending
                } else {
                    Phase::Healthy
                }
            };
            assert_eq!(decide(entry(name), phase_of, T), Decision::Wait, "{name} must wait for iam");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let secs: Vec<u64> = (1..=8).map(|n| restart_backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
