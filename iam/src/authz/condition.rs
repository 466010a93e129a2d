//! Conditions a binding may carry: where the request comes from, when it is made, and which
//! labels the resource has. A binding applies only while its condition holds.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::IamError;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Condition {
    /// Source addresses the binding applies to (CIDRs or single addresses); empty: any.
    pub source_cidrs: Vec<String>,
    /// Unix seconds before which the binding does not apply; 0: no bound.
    pub not_before: i64,
    /// Unix seconds from which the binding no longer applies; 0: no bound.
    pub not_after: i64,
    /// A daily window in UTC, `[start_hour, end_hour)`; it may wrap midnight (`[22, 6]`).
    pub hours_utc: Option<[u8; 2]>,
    /// Labels the resource must carry, every one of them.
    pub resource_labels: BTreeMap<String, String>,
}

/// What a request brings for conditions to look at.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub source_ip: Option<IpAddr>,
    /// Unix seconds.
    pub now: i64,
    pub resource_labels: BTreeMap<String, String>,
}

impl Condition {
    pub fn validate(&self) -> Result<(), IamError> {
        if self.source_cidrs.len() > 64 || self.resource_labels.len() > 64 {
            return Err(IamError::invalid("condition", "at most 64 source_cidrs and 64 resource_labels"));
        }
        for (key, value) in &self.resource_labels {
            crate::model::validate_text("condition.resource_labels", key, 128)?;
            crate::model::validate_text("condition.resource_labels", value, 256)?;
        }
        for cidr in &self.source_cidrs {
            Cidr::parse(cidr)?;
        }
        if self.not_before != 0 && self.not_after != 0 && self.not_after <= self.not_before {
            return Err(IamError::invalid("condition.not_after", "must be later than condition.not_before"));
        }
        if let Some([start, end]) = self.hours_utc {
            if start > 23 || end > 24 || start == end {
                return Err(IamError::invalid(
                    "condition.hours_utc",
                    format!("[{start}, {end}] is not a window of hours 0-24 (start and end differ)"),
                ));
            }
        }
        Ok(())
    }

    /// `Ok` when the condition holds for `context`, else why not.
    pub fn check(&self, context: &RequestContext) -> Result<(), String> {
        if !self.source_cidrs.is_empty() {
            let Some(ip) = context.source_ip else {
                return Err("the binding requires a source address and the request has none".into());
            };
            let inside = self.source_cidrs.iter().filter_map(|c| Cidr::parse(c).ok()).any(|c| c.contains(ip));
            if !inside {
                return Err(format!("source {ip} is outside {}", self.source_cidrs.join(", ")));
            }
        }
        if self.not_before != 0 && context.now < self.not_before {
            return Err(format!("the binding applies from {} (unix seconds)", self.not_before));
        }
        if self.not_after != 0 && context.now >= self.not_after {
            return Err(format!("the binding ended at {} (unix seconds)", self.not_after));
        }
        if let Some([start, end]) = self.hours_utc {
            let hour = (context.now.rem_euclid(86_400) / 3600) as u8;
            let inside = if start < end { hour >= start && hour < end } else { hour >= start || hour < end };
            if !inside {
                return Err(format!("hour {hour} UTC is outside [{start}, {end})"));
            }
        }
        for (key, value) in &self.resource_labels {
            if context.resource_labels.get(key) != Some(value) {
                return Err(format!("the resource does not carry label {key}={value}"));
            }
        }
        Ok(())
    }
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Result<Self, IamError> {
        let bad = || IamError::invalid("condition.source_cidrs", format!("{text:?} is not an address or CIDR"));
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - self.prefix) };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ip: &str, now: i64) -> RequestContext {
        RequestContext { source_ip: Some(ip.parse().unwrap()), now, resource_labels: BTreeMap::new() }
    }

    #[test]
    fn source_addresses() {
        let c = Condition { source_cidrs: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()], ..Default::default() };
        assert!(c.check(&at("10.1.2.3", 0)).is_ok());
        assert!(c.check(&at("2001:db8::1", 0)).is_ok());
        assert!(c.check(&at("192.168.1.1", 0)).unwrap_err().contains("outside"));
        assert!(c.check(&RequestContext::default()).is_err(), "no source address");
        let single = Condition { source_cidrs: vec!["127.0.0.1".into()], ..Default::default() };
        assert!(single.check(&at("127.0.0.1", 0)).is_ok());
        assert!(single.check(&at("127.0.0.2", 0)).is_err());
    }

    #[test]
    fn time_windows() {
        let c = Condition { not_before: 1000, not_after: 2000, ..Default::default() };
        assert!(c.check(&at("1.1.1.1", 999)).is_err());
        assert!(c.check(&at("1.1.1.1", 1000)).is_ok());
        assert!(c.check(&at("1.1.1.1", 2000)).is_err());
        let office = Condition { hours_utc: Some([8, 18]), ..Default::default() };
        assert!(office.check(&at("1.1.1.1", 9 * 3600)).is_ok());
        assert!(office.check(&at("1.1.1.1", 18 * 3600)).is_err());
        let night = Condition { hours_utc: Some([22, 6]), ..Default::default() };
        assert!(night.check(&at("1.1.1.1", 23 * 3600)).is_ok());
        assert!(night.check(&at("1.1.1.1", 86_400 + 5 * 3600)).is_ok());
        assert!(night.check(&at("1.1.1.1", 12 * 3600)).is_err());
    }

    #[test]
    fn labels_and_validation() {
        let c = Condition { resource_labels: [("env".into(), "dev".into())].into(), ..Default::default() };
        let mut ctx = at("1.1.1.1", 0);
        assert!(c.check(&ctx).is_err());
        ctx.resource_labels.insert("env".into(), "dev".into());
        assert!(c.check(&ctx).is_ok());
        for bad in [
            Condition { source_cidrs: vec!["10.0.0.0/33".into()], ..Default::default() },
            Condition { source_cidrs: vec!["nonsense".into()], ..Default::default() },
            Condition { not_before: 10, not_after: 5, ..Default::default() },
            Condition { hours_utc: Some([25, 3]), ..Default::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
