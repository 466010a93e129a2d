//! PrismNET's configuration: the runtime's `[server]` (the API port, 9091), `[log]`, `[tls]`,
//! plus `[chainfire]` (where networks live), `[iam]` (who decides), `[dataplane]` (this node's
//! part: its name, its tunnel address, its namespaces), `[external]` (the way out), `[ipam]`
//! (the platform's pools) and `[dns]` (ports' names in FlashDNS). Every key is documented in `prismnet-server --help`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use photon_auth::IamSection;
use photon_resource::ChainfireSection;
use photon_runtime::{LogSection, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection};
use serde::{Deserialize, Serialize};

pub const SPEC: ServiceSpec =
    ServiceSpec { name: "prismnet", env_prefix: "PRISMNET", default_port: 9091, version: env!("CARGO_PKG_VERSION") };

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrismnetConfig {
    pub server: ServerSection,
    pub log: LogSection,
    pub tls: TlsSection,
    pub chainfire: ChainfireSection,
    pub iam: IamSection,
    pub dataplane: DataplaneSection,
    pub external: ExternalSection,
    pub ipam: IpamSection,
    pub dns: DnsSection,
}

/// `[dataplane]`: this node's part. Every prismnet node serves the API; with the dataplane on,
/// it also builds, for each VPC with a port bound here, a network namespace holding the VPC's
/// bridge, VXLAN device and gateway, and plugs the ports in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneSection {
    /// Run the dataplane (needs CAP_NET_ADMIN and CAP_SYS_ADMIN); off on API-only nodes.
    pub enabled: bool,
    /// This node's name, as ports' `binding.node` gives it (default: the host name).
    pub node: Option<String>,
    /// The underlay address other nodes send this node's VXLAN traffic to (default: the
    /// address the kernel would send from toward the default route, else 127.0.0.1).
    pub vtep_address: Option<Ipv4Addr>,
    /// The underlay's MTU; VPC interfaces get 50 bytes less (VXLAN over IPv4).
    pub underlay_mtu: u32,
    /// Each VPC's namespace is `<netns_prefix><vni>` under /run/netns (`ip netns exec` works).
    pub netns_prefix: String,
    /// How often every VPC of the node is reconciled even without a change (repairs drift
    /// such as a device deleted by hand), in milliseconds.
    pub resync_ms: u64,
}

/// `[external]`: the network VPCs reach through routers and are reached from by floating IPs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSection {
    /// The node's interface on the external network (unset: no router or floating IP is
    /// realised on this node).
    pub interface: Option<String>,
    /// The external addresses floating IPs are taken from (unset: floating IPs cannot be
    /// created). Every node needs the same value.
    pub floating_cidr: Option<Ipv4Net>,
}

/// `[ipam]`: the platform's own address pools.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpamSection {
    /// Service IPs (load balancers' VIPs, services' cluster addresses) are taken from here.
    pub service_cidr: Option<Ipv4Net>,
}

/// `[dns]`: ports' names. With FlashDNS present, each VPC gets a zone
/// `<vpc>.<project>.<org>.<domain>` holding `<port>.<subnet>` A records, kept by whichever
/// prismnet node holds the registrar's claim; DHCP gives machines `<subnet>.<vpc zone>` as their
/// domain. The zones belong to the platform (IAM's `bootstrap.services` must list `prismnet`,
/// and `iam.credentials_file` name its key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSection {
    /// FlashDNS's API URL (`https://<host>:853`); unset: ports get no names.
    pub flashdns: Option<String>,
    /// The domain every VPC's zone sits under (claimed as a zone of the platform, so no tenant
    /// can take it).
    pub domain: String,
    /// TTL of ports' records, in seconds.
    pub ttl: u32,
    /// The DNS servers DHCP gives machines of subnets that name none of their own (FlashDNS's
    /// addresses, say, reached through a router).
    pub servers: Vec<Ipv4Addr>,
    /// How often every zone is compared with FlashDNS even without a change (repairs records
    /// changed or lost there), in milliseconds.
    pub resync_ms: u64,
}

impl ServiceConfig for PrismnetConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            chainfire: ChainfireSection::default(),
            iam: IamSection::default(),
            dataplane: DataplaneSection {
                enabled: true,
                node: None,
                vtep_address: None,
                underlay_mtu: 1500,
                netns_prefix: "prismnet-".into(),
                resync_ms: 10_000,
            },
            external: ExternalSection { interface: None, floating_cidr: None },
            ipam: IpamSection { service_cidr: Some(Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 16).unwrap_or_default()) },
            dns: DnsSection {
                flashdns: None,
                domain: "photon.internal".into(),
                ttl: 60,
                servers: Vec::new(),
                resync_ms: 30_000,
            },
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}
