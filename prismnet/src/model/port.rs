//! A port: one interface on a VPC — its MAC and fixed address in one subnet, its security
//! groups, and where it is plugged in (the node and the device: a tap for a VM, a veth into a
//! pod's or a machine's network namespace).

use std::net::Ipv4Addr;

use photon_resource::{check_name, FieldError, Kind};
use serde::{Deserialize, Serialize};

use super::immutable;

pub struct Port;

/// The first two bytes of every MAC PrismNET derives (locally administered, unicast); the
/// other four are the port's IPv4 address, so two ports of a VPC never share a MAC.
pub const MAC_PREFIX: [u8; 2] = [0x02, 0x7e];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// The port's address in its subnet: picked from the free ones when left out.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// `aa:bb:cc:dd:ee:ff`: derived from the address when left out.
    #[serde(default)]
    pub mac: Option<String>,
    /// Names of security groups of the VPC. None: no traffic in (but replies), all out.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// Only the port's own MAC and address may send from it (anti-spoofing).
    #[serde(default = "yes")]
    pub port_security: bool,
    /// Where the port is plugged in; unbound ports exist only in the control plane.
    #[serde(default)]
    pub binding: Option<Binding>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// The prismnet node (`dataplane.node`) whose dataplane plugs the port in.
    pub node: String,
    #[serde(default)]
    pub device: Device,
    /// veth: the network namespace the machine's end goes into, a name under /run/netns or a
    /// path (`/proc/<pid>/ns/net`). tap: unused.
    #[serde(default)]
    pub netns: Option<String>,
    /// veth: the machine's end's name inside its namespace (default `eth0`). tap: the tap
    /// device the hypervisor opened (required).
    #[serde(default)]
    pub ifname: Option<String>,
    /// veth: also give the machine's end its address, the subnet's gateway as default route
    /// and the MTU (what a CNI plugin does), instead of leaving that to DHCP.
    #[serde(default)]
    pub configure: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// A veth pair: one end on the VPC's bridge, the other in the machine's namespace.
    #[default]
    Veth,
    /// A tap a VM's hypervisor holds, moved onto the VPC's bridge.
    Tap,
}

/// A MAC in canonical text (lower case), or what is wrong with it.
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("{text:?} is not a MAC address (six hex bytes joined by ':')"));
    }
    for (byte, part) in mac.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(format!("{text:?} is not a MAC address (six hex bytes joined by ':')"));
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| format!("{text:?} is not a MAC address (six hex bytes joined by ':')"))?;
    }
    Ok(mac)
}

pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The MAC PrismNET gives a port with address `ip`.
pub fn derived_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [MAC_PREFIX[0], MAC_PREFIX[1], o[0], o[1], o[2], o[3]]
}

/// An interface name as the kernel takes it: 1 to 15 bytes, no '/', ':', space or NUL.
pub fn check_ifname(field: &str, name: &str) -> Result<(), FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("{name:?} is not an interface name (1 to 15 printable bytes, no '/' or ':')")))
    }
}

impl Kind for Port {
    type Spec = PortSpec;
    const NAME: &'static str = "port";
    const PATH: &'static [&'static str] = &["vpcs", "subnets", "ports"];

    fn validate(spec: &PortSpec) -> Result<(), FieldError> {
        if let Some(mac) = &spec.mac {
            let bytes = parse_mac(mac).map_err(|e| FieldError::new("spec.mac", e))?;
            if bytes[0] & 1 == 1 || bytes == [0; 6] {
                return Err(FieldError::new("spec.mac", format!("{mac} is not a unicast MAC")));
            }
            if *mac != format_mac(bytes) {
                return Err(FieldError::new("spec.mac", format!("{mac} must be lower case: {}", format_mac(bytes))));
            }
        }
        if spec.security_groups.len() > 16 {
            return Err(FieldError::new("spec.security_groups", format!("{} groups; at most 16", spec.security_groups.len())));
        }
        for (i, group) in spec.security_groups.iter().enumerate() {
            check_name(&format!("spec.security_groups[{i}]"), group)?;
        }
        if let Some(binding) = &spec.binding {
            let node_ok = !binding.node.is_empty()
                && binding.node.len() <= 253
                && binding.node.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
            if !node_ok {
                return Err(FieldError::new("spec.binding.node", format!("{:?} is not a node name", binding.node)));
            }
            if let Some(ifname) = &binding.ifname {
                check_ifname("spec.binding.ifname", ifname)?;
            }
            match binding.device {
                Device::Veth => {
                    let Some(netns) = &binding.netns else {
                        return Err(FieldError::new("spec.binding.netns", "a veth port names the namespace its machine end goes into"));
                    };
                    let ok = !netns.is_empty() && netns.len() <= 255 && !netns.contains('\0') && (netns.starts_with('/') || !netns.contains('/'));
                    if !ok || netns.contains("..") {
                        return Err(FieldError::new("spec.binding.netns", format!("{netns:?} is neither a namespace name nor an absolute path")));
                    }
                }
                Device::Tap => {
                    if binding.ifname.is_none() {
                        return Err(FieldError::new("spec.binding.ifname", "a tap port names the tap device"));
                    }
                    if binding.configure {
                        return Err(FieldError::new("spec.binding.configure", "only a veth port's machine end can be configured"));
                    }
                }
            }
        }
        Ok(())
    }

    /// An address and a MAC serve one port of a subnet (addresses: of the VPC, as its subnets
    /// never overlap).
    fn unique_in_parent(spec: &PortSpec) -> Vec<String> {
        let mut claims = Vec::new();
        if let Some(ip) = spec.ip {
            claims.push(ip.to_string());
        }
        if let Some(mac) = &spec.mac {
            claims.push(format!("mac-{mac}"));
        }
        claims
    }

    fn update(new: &mut PortSpec, current: &PortSpec) -> Result<(), FieldError> {
        immutable("spec.ip", &mut new.ip, &current.ip)?;
        immutable("spec.mac", &mut new.mac, &current.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_print_back_and_are_derived_from_the_address() {
        assert_eq!(format_mac(parse_mac("02:7e:0a:00:00:05").unwrap()), "02:7e:0a:00:00:05");
        assert_eq!(derived_mac("10.0.0.5".parse().unwrap()), [2, 0x7e, 10, 0, 0, 5]);
        for bad in ["", "02:7e:0a:00:00", "02:7e:0a:00:00:0g", "027e0a000005", "02:7e:0a:00:00:005"] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
