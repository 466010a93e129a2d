//! PTR records made up on the fly for the addresses of a reverse zone's subnet that have none
//! of their own (as Knot's synthrecord module does): `10.1.2.3` answers
//! `ip-10-1-2-3.example.com.` from the pattern `ip-{ip}.example.com.`, so every address a
//! network hands out has a name before anyone registers one.

use std::net::IpAddr;

use hickory_proto::rr::rdata::PTR;
use hickory_proto::rr::{Name, RData, Record};
use ipnet::IpNet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrSynthesis {
    /// The subnet whose addresses get names.
    pub network: IpNet,
    /// `{ip}` is the address with its separators as dashes (`10-1-2-3`,
    /// `2001-db8-0-0-0-0-0-1`); `{a}`..`{d}` are an IPv4 address's octets.
    pub pattern: String,
    pub ttl: u32,
}

/// What the synthesis says about a name under the reverse zone.
pub enum Synthesized {
    /// An address of the subnet: its PTR.
    Host(Box<Record>),
    /// A name above addresses of the subnet (a shorter reverse name): it exists, empty.
    Between,
}

impl PtrSynthesis {
    /// Checks a pattern for `network`: every placeholder known, and the name it makes valid.
    pub fn check(network: IpNet, pattern: &str) -> Result<(), String> {
        if !pattern.ends_with('.') {
            return Err(format!("{pattern:?} must be an absolute name (end with a dot)"));
        }
        let has_ip = pattern.contains("{ip}");
        let has_octets = ["{a}", "{b}", "{c}", "{d}"].iter().all(|p| pattern.contains(p));
        if !(has_ip || has_octets && network.addr().is_ipv4()) {
            return Err(format!("{pattern:?} must contain {{ip}} (or, for IPv4, all of {{a}} {{b}} {{c}} {{d}}) so each address gets its own name"));
        }
        let sample = Self { network, pattern: pattern.to_string(), ttl: 0 };
        let name = sample.render(network.addr());
        if name.contains(['{', '}']) {
            return Err(format!("{pattern:?} has a placeholder other than {{ip}}, {{a}}, {{b}}, {{c}}, {{d}}"));
        }
        name.parse::<Name>().map(|_| ()).map_err(|e| format!("{pattern:?} does not make a valid name: {e}"))
    }

    fn render(&self, ip: IpAddr) -> String {
        let dashed = match ip {
            IpAddr::V4(v4) => v4.octets().map(|o| o.to_string()).join("-"),
            IpAddr::V6(v6) => v6.segments().map(|s| format!("{s:x}")).join("-"),
        };
        let mut name = self.pattern.replace("{ip}", &dashed);
        if let IpAddr::V4(v4) = ip {
            for (placeholder, octet) in ["{a}", "{b}", "{c}", "{d}"].iter().zip(v4.octets()) {
                name = name.replace(placeholder, &octet.to_string());
            }
        }
        name
    }

    /// The synthesized answer for `qname`, if it is a reverse name inside the subnet.
    pub fn lookup(&self, qname: &Name) -> Option<Synthesized> {
        let net = qname.parse_arpa_name().ok()?;
        // Reverse zones start at or below the subnet's prefix, so every name of one that is an
        // address range inside the subnet is either an address or the parent of some.
        if net.prefix_len() < self.network.prefix_len() || !self.network.contains(&net.network()) {
            return None;
        }
        if net.prefix_len() < net.max_prefix_len() {
            return Some(Synthesized::Between);
        }
        let target: Name = self.render(net.addr()).parse().ok()?;
        Some(Synthesized::Host(Box::new(Record::from_rdata(qname.clone(), self.ttl, RData::PTR(PTR(target))))))
    }
}
