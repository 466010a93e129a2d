//! `photonctl net`: a project's networks in PrismNET — VPCs, subnets, ports, security groups
//! and their rules, routers and floating IPs — through its REST API as the saved login. `plan`
//! maps a command to its one API call, without I/O; `run` sends it and prints the answer.

use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use crate::dns::{Owner, ProjectArgs};
use crate::resource::{create, execute, spec_of, Call, Show};
use crate::rest::Target;
use crate::OutputFormat;

#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// VPCs: a private address space (which may overlap another project's), one VXLAN segment.
    Vpc {
        #[command(subcommand)]
        command: VpcCommand,
    },
    /// Subnets of a VPC: a range with a gateway on every node, DHCP, DNS servers and routes.
    Subnet {
        #[command(subcommand)]
        command: SubnetCommand,
    },
    /// Ports of a subnet: an address and MAC, security groups, and where they are plugged in.
    Port {
        #[command(subcommand)]
        command: PortCommand,
    },
    /// Security groups of a VPC (default: no new connection in, everything out) and their rules.
    Sg {
        #[command(subcommand)]
        command: SgCommand,
    },
    /// Routers of a VPC: its subnets' way out to the external network (SNAT).
    Router {
        #[command(subcommand)]
        command: RouterCommand,
    },
    /// Floating IPs: external addresses mapped to ports.
    Fip {
        #[command(subcommand)]
        command: FipCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum VpcCommand {
    /// Create a VPC with --cidr (a /8 to /28); its VXLAN id is assigned unless --vni.
    Create {
        name: String,
        #[arg(long)]
        cidr: String,
        #[arg(long)]
        vni: Option<u32>,
    },
    Ls,
    Show { name: String },
    /// Delete a VPC with everything in it (subnets, ports, groups, routers).
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SubnetCommand {
    /// Create a subnet of VPC with --cidr inside the VPC's (the gateway is its first address
    /// unless --gateway); --dns (repeatable) for DHCP; --no-dhcp to leave ports to configure.
    Create {
        vpc: String,
        name: String,
        #[arg(long)]
        cidr: String,
        #[arg(long)]
        gateway: Option<String>,
        #[arg(long = "dns", value_name = "IP")]
        dns_servers: Vec<String>,
        #[arg(long)]
        no_dhcp: bool,
    },
    Ls { vpc: String },
    Show { vpc: String, name: String },
    /// Delete a subnet with its ports.
    Rm { vpc: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum PortCommand {
    /// Create a port: --ip (else a free one), --mac (else derived), --sg (repeatable); plug it
    /// in on --node as a veth into --netns (with --configure, addressed and routed there) or,
    /// with --tap, onto a VM's tap device.
    Create {
        vpc: String,
        subnet: String,
        name: String,
        #[arg(long)]
        ip: Option<String>,
        #[arg(long)]
        mac: Option<String>,
        #[arg(long = "sg", value_name = "GROUP")]
        security_groups: Vec<String>,
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        netns: Option<String>,
        #[arg(long, value_name = "IFNAME")]
        tap: Option<String>,
        #[arg(long)]
        ifname: Option<String>,
        #[arg(long)]
        configure: bool,
    },
    Ls { vpc: String, subnet: String },
    Show { vpc: String, subnet: String, name: String },
    /// Change a port's security groups (--sg, repeatable; none: no group).
    Set {
        vpc: String,
        subnet: String,
        name: String,
        #[arg(long = "sg", value_name = "GROUP")]
        security_groups: Vec<String>,
    },
    /// Delete a port: unplugged, its address released.
    Rm { vpc: String, subnet: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum SgCommand {
    Create { vpc: String, name: String },
    Ls { vpc: String },
    Show { vpc: String, name: String },
    Rm { vpc: String, name: String },
    /// Rules of a group: add, ls, rm.
    Rule {
        #[command(subcommand)]
        command: RuleCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Allow traffic: --direction ingress|egress, --protocol any|tcp|udp|icmp, --ports N or
    /// N-M, from/to --remote-cidr or members of --remote-group.
    Add {
        vpc: String,
        sg: String,
        name: String,
        #[arg(long)]
        direction: String,
        #[arg(long)]
        protocol: Option<String>,
        #[arg(long)]
        ports: Option<String>,
        #[arg(long)]
        remote_cidr: Option<String>,
        #[arg(long)]
        remote_group: Option<String>,
    },
    Ls { vpc: String, sg: String },
    Rm { vpc: String, sg: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum RouterCommand {
    /// Create a router for the VPC's --subnet (repeatable).
    Create {
        vpc: String,
        name: String,
        #[arg(long = "subnet")]
        subnets: Vec<String>,
    },
    Ls { vpc: String },
    Show { vpc: String, name: String },
    Rm { vpc: String, name: String },
}

#[derive(Debug, Subcommand)]
pub enum FipCommand {
    /// Take an external address (--address, else a free one), mapped to --port VPC/SUBNET/PORT.
    Create {
        name: String,
        #[arg(long)]
        address: Option<String>,
        #[arg(long, value_name = "VPC/SUBNET/PORT")]
        port: Option<String>,
    },
    Ls,
    Show { name: String },
    Rm { name: String },
}

const VPC_COLUMNS: &[&str] = &["name", "cidr", "vni", "created_at"];
const SUBNET_COLUMNS: &[&str] = &["name", "cidr", "gateway", "dhcp", "dns_servers"];
const PORT_COLUMNS: &[&str] = &["name", "ip", "mac", "security_groups", "binding"];
const SG_COLUMNS: &[&str] = &["name", "description", "created_at"];
const RULE_COLUMNS: &[&str] = &["name", "direction", "protocol", "port_min", "port_max", "remote_cidr", "remote_group"];
const ROUTER_COLUMNS: &[&str] = &["name", "subnets", "snat"];
const FIP_COLUMNS: &[&str] = &["name", "address", "port"];

/// `--ports 80` or `--ports 8000-8080` as (min, max).
fn port_range(ports: &str) -> Option<(Value, Value)> {
    let (min, max) = ports.split_once('-').unwrap_or((ports, ports));
    let parse = |p: &str| p.trim().parse::<u16>().ok().map(Value::from);
    Some((parse(min)?, parse(max)?))
}

/// The API call `command` makes for `owner`.
pub fn plan(command: &NetCommand, owner: &Owner) -> anyhow::Result<Call> {
    let segment = photon_auth::sigv4::encode;
    let project = format!("/api/v1/orgs/{}/projects/{}", segment(&owner.org), segment(&owner.project));
    let vpcs = format!("{project}/vpcs");
    let vpc = |name: &str| format!("{vpcs}/{}", segment(name));
    let under = |vpc_name: &str, plural: &str| format!("{}/{plural}", vpc(vpc_name));
    let one = |collection: String, name: &str| format!("{collection}/{}", segment(name));
    let call = Call::new;
    let list = |path: String, columns| call(Method::GET, path, None, Show::Rows(columns));
    let rm = |path: String, what: String| call(Method::DELETE, path, None, Show::Done(format!("deleted {what}")));
    let strings = |values: &[String]| (!values.is_empty()).then(|| json!(values));
    Ok(match command {
        NetCommand::Vpc { command } => match command {
            VpcCommand::Create { name, cidr, vni } => call(
                Method::POST,
                vpcs.clone(),
                create(name, spec_of(&[("cidr", Some(json!(cidr))), ("vni", vni.map(Value::from))])),
                Show::Rows(VPC_COLUMNS),
            ),
            VpcCommand::Ls => list(vpcs.clone(), VPC_COLUMNS),
            VpcCommand::Show { name } => list(vpc(name), VPC_COLUMNS),
            VpcCommand::Rm { name } => rm(vpc(name), format!("VPC {name}")),
        },
        NetCommand::Subnet { command } => match command {
            SubnetCommand::Create { vpc: v, name, cidr, gateway, dns_servers, no_dhcp } => {
                let spec = spec_of(&[
                    ("cidr", Some(json!(cidr))),
                    ("gateway", gateway.clone().map(Value::from)),
                    ("dns_servers", strings(dns_servers)),
                    ("dhcp", no_dhcp.then_some(json!(false))),
                ]);
                call(Method::POST, under(v, "subnets"), create(name, spec), Show::Rows(SUBNET_COLUMNS))
            }
            SubnetCommand::Ls { vpc: v } => list(under(v, "subnets"), SUBNET_COLUMNS),
            SubnetCommand::Show { vpc: v, name } => list(one(under(v, "subnets"), name), SUBNET_COLUMNS),
            SubnetCommand::Rm { vpc: v, name } => rm(one(under(v, "subnets"), name), format!("subnet {name} of {v}")),
        },
        NetCommand::Port { command } => {
            let ports = |v: &str, s: &str| format!("{}/ports", one(under(v, "subnets"), s));
            match command {
                PortCommand::Create { vpc: v, subnet, name, ip, mac, security_groups, node, netns, tap, ifname, configure } => {
                    let binding = match (node, tap) {
                        (None, None) if netns.is_none() => None,
                        (None, _) => anyhow::bail!("--node names where the port is plugged in (with --netns or --tap)"),
                        (Some(node), Some(tap)) => Some(json!({"node": node, "device": "tap", "ifname": tap})),
                        (Some(node), None) => {
                            let mut binding = json!({"node": node, "device": "veth", "netns": netns, "configure": configure});
                            if let Some(ifname) = ifname {
                                binding["ifname"] = json!(ifname);
                            }
                            Some(binding)
                        }
                    };
                    let spec = spec_of(&[
                        ("ip", ip.clone().map(Value::from)),
                        ("mac", mac.clone().map(Value::from)),
                        ("security_groups", strings(security_groups)),
                        ("binding", binding),
                    ]);
                    call(Method::POST, ports(v, subnet), create(name, spec), Show::Rows(PORT_COLUMNS))
                }
                PortCommand::Ls { vpc: v, subnet } => list(ports(v, subnet), PORT_COLUMNS),
                PortCommand::Show { vpc: v, subnet, name } => list(one(ports(v, subnet), name), PORT_COLUMNS),
                PortCommand::Set { vpc: v, subnet, name, security_groups } => call(
                    Method::PUT,
                    one(ports(v, subnet), name),
                    Some(json!({"security_groups": security_groups})),
                    Show::Modify(PORT_COLUMNS),
                ),
                PortCommand::Rm { vpc: v, subnet, name } => rm(one(ports(v, subnet), name), format!("port {name} of {v}/{subnet}")),
            }
        }
        NetCommand::Sg { command } => {
            let groups = |v: &str| under(v, "securitygroups");
            match command {
                SgCommand::Create { vpc: v, name } => call(Method::POST, groups(v), create(name, json!({})), Show::Rows(SG_COLUMNS)),
                SgCommand::Ls { vpc: v } => list(groups(v), SG_COLUMNS),
                SgCommand::Show { vpc: v, name } => list(one(groups(v), name), SG_COLUMNS),
                SgCommand::Rm { vpc: v, name } => rm(one(groups(v), name), format!("security group {name} of {v}")),
                SgCommand::Rule { command } => {
                    let rules = |v: &str, g: &str| format!("{}/rules", one(groups(v), g));
                    match command {
                        RuleCommand::Add { vpc: v, sg, name, direction, protocol, ports, remote_cidr, remote_group } => {
                            let (min, max) = match ports {
                                Some(text) => match port_range(text) {
                                    Some((min, max)) => (Some(min), Some(max)),
                                    None => anyhow::bail!("--ports {text:?}: a port (80) or a range (8000-8080)"),
                                },
                                None => (None, None),
                            };
                            let spec = spec_of(&[
                                ("direction", Some(json!(direction))),
                                ("protocol", protocol.clone().map(Value::from)),
                                ("port_min", min),
                                ("port_max", max),
                                ("remote_cidr", remote_cidr.clone().map(Value::from)),
                                ("remote_group", remote_group.clone().map(Value::from)),
                            ]);
                            call(Method::POST, rules(v, sg), create(name, spec), Show::Rows(RULE_COLUMNS))
                        }
                        RuleCommand::Ls { vpc: v, sg } => list(rules(v, sg), RULE_COLUMNS),
                        RuleCommand::Rm { vpc: v, sg, name } => rm(one(rules(v, sg), name), format!("rule {name} of {sg}")),
                    }
                }
            }
        }
        NetCommand::Router { command } => match command {
            RouterCommand::Create { vpc: v, name, subnets } => {
                call(Method::POST, under(v, "routers"), create(name, json!({"subnets": subnets})), Show::Rows(ROUTER_COLUMNS))
            }
            RouterCommand::Ls { vpc: v } => list(under(v, "routers"), ROUTER_COLUMNS),
            RouterCommand::Show { vpc: v, name } => list(one(under(v, "routers"), name), ROUTER_COLUMNS),
            RouterCommand::Rm { vpc: v, name } => rm(one(under(v, "routers"), name), format!("router {name} of {v}")),
        },
        NetCommand::Fip { command } => {
            let fips = format!("{project}/floatingips");
            match command {
                FipCommand::Create { name, address, port } => {
                    let port = match port.as_deref().map(|p| p.split('/').collect::<Vec<_>>()) {
                        None => None,
                        Some(parts) if parts.len() == 3 => Some(json!({"vpc": parts[0], "subnet": parts[1], "port": parts[2]})),
                        Some(_) => anyhow::bail!("--port takes VPC/SUBNET/PORT"),
                    };
                    let spec = spec_of(&[("address", address.clone().map(Value::from)), ("port", port)]);
                    call(Method::POST, fips, create(name, spec), Show::Rows(FIP_COLUMNS))
                }
                FipCommand::Ls => list(fips, FIP_COLUMNS),
                FipCommand::Show { name } => list(one(fips, name), FIP_COLUMNS),
                FipCommand::Rm { name } => rm(one(fips, name), format!("floating IP {name}")),
            }
        }
    })
}

pub async fn run(target: Target, args: ProjectArgs, command: NetCommand, output: OutputFormat) -> anyhow::Result<()> {
    // Bad arguments are refused before logging in.
    plan(&command, &Owner { org: String::new(), project: String::new() })?;
    let (rest, owner) = crate::rest::session(target, &args, "prismnet").await?;
    execute(&rest, "prismnet", plan(&command, &owner)?, output).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Line {
        #[command(subcommand)]
        command: NetCommand,
    }

    fn planned(args: &[&str]) -> anyhow::Result<Call> {
        let line = Line::try_parse_from(std::iter::once("net").chain(args.iter().copied()))?;
        plan(&line.command, &Owner { org: "acme".into(), project: "web".into() })
    }

    const VPCS: &str = "/api/v1/orgs/acme/projects/web/vpcs";

    #[test]
    fn commands_map_to_the_kinds_routes() {
        let vpc = planned(&["vpc", "create", "blue", "--cidr", "10.0.0.0/16"]).unwrap();
        assert_eq!((vpc.method, vpc.path.as_str()), (Method::POST, VPCS));
        assert_eq!(vpc.body, Some(json!({"name": "blue", "spec": {"cidr": "10.0.0.0/16"}})));
        let subnet = planned(&["subnet", "create", "blue", "front", "--cidr", "10.0.1.0/24", "--dns", "10.0.0.2", "--no-dhcp"]).unwrap();
        assert_eq!(subnet.path, format!("{VPCS}/blue/subnets"));
        assert_eq!(subnet.body, Some(json!({"name": "front", "spec": {"cidr": "10.0.1.0/24", "dns_servers": ["10.0.0.2"], "dhcp": false}})));
        let port = planned(&["port", "create", "blue", "front", "a", "--sg", "web", "--node", "n1", "--netns", "m1", "--configure"]).unwrap();
        assert_eq!(port.path, format!("{VPCS}/blue/subnets/front/ports"));
        assert_eq!(
            port.body,
            Some(json!({"name": "a", "spec": {"security_groups": ["web"], "binding": {"node": "n1", "device": "veth", "netns": "m1", "configure": true}}}))
        );
        let tap = planned(&["port", "create", "blue", "front", "vm", "--node", "n1", "--tap", "tap0"]).unwrap();
        assert_eq!(tap.body.unwrap()["spec"]["binding"], json!({"node": "n1", "device": "tap", "ifname": "tap0"}));
        let set = planned(&["port", "set", "blue", "front", "a"]).unwrap();
        assert_eq!((set.method, set.show), (Method::PUT, Show::Modify(PORT_COLUMNS)));
        assert_eq!(set.body, Some(json!({"security_groups": []})));
        let rule = planned(&["sg", "rule", "add", "blue", "web", "http", "--direction", "ingress", "--protocol", "tcp", "--ports", "80-81"]).unwrap();
        assert_eq!(rule.path, format!("{VPCS}/blue/securitygroups/web/rules"));
        assert_eq!(rule.body.unwrap()["spec"], json!({"direction": "ingress", "protocol": "tcp", "port_min": 80, "port_max": 81}));
        let fip = planned(&["fip", "create", "f1", "--port", "blue/front/a"]).unwrap();
        assert_eq!(fip.path, "/api/v1/orgs/acme/projects/web/floatingips");
        assert_eq!(fip.body.unwrap()["spec"]["port"], json!({"vpc": "blue", "subnet": "front", "port": "a"}));
        let rm = planned(&["router", "rm", "blue", "out"]).unwrap();
        assert_eq!((rm.method, rm.path.as_str()), (Method::DELETE, &*format!("{VPCS}/blue/routers/out")));
    }

    #[test]
    fn bad_arguments_are_refused_before_any_request() {
        assert!(planned(&["sg", "rule", "add", "blue", "web", "x", "--direction", "ingress", "--ports", "http"]).is_err());
        assert!(planned(&["fip", "create", "f1", "--port", "blue/a"]).is_err());
        assert!(planned(&["port", "create", "blue", "front", "a", "--netns", "m1"]).is_err(), "a binding names its node");
    }
}
