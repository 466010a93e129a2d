//! The platform's services as `photonctl` knows them: one table entry per service. A new
//! service joins `photonctl up` and `photonctl status` by adding a row here, nothing else.

/// How a service depends on another, with systemd's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dep {
    /// Must be healthy first; if it never is, this service is not started.
    Requires,
    /// Started first if present; this service starts (degraded) even if it never comes up.
    Wants,
    /// Ordering only: started first if present.
    After,
}

#[derive(Debug)]
pub struct ServiceEntry {
    pub name: &'static str,
    /// The API port: gRPC, REST, `/health` and `/metrics`.
    pub api_port: u16,
    pub deps: &'static [(Dep, &'static str)],
    /// Service-specific settings, as the config keys' environment variables (every key has
    /// one), so a binary never sees a flag it does not know. `{data}`, `{port}`, `{port+1}`, `{port+2}`
    /// (the peer port by convention; `+2` the gossip port), `{port:N}` (port N as `up` serves it:
    /// `endpoints::up_port`), `{offset}` and `{url:<service>}` (another service's API URL) are
    /// substituted in values.
    pub env: &'static [(&'static str, &'static str)],
}

impl ServiceEntry {
    pub fn binary_name(&self) -> String {
        format!("{}-server", self.name)
    }
}

use Dep::{After, Requires, Wants};

/// Every service, in start order (PLATFORM.md): chainfire → flaredb → iam → application tier.
pub const CATALOG: &[ServiceEntry] = &[
    ServiceEntry {
        name: "chainfire",
        api_port: 2379,
        deps: &[],
        env: &[
            ("CHAINFIRE_RAFT_LISTEN", "127.0.0.1:{port+1}"),
            // Node membership of this one node, so `photonctl node ls` and `status` show it.
            ("CHAINFIRE_GOSSIP_LISTEN", "127.0.0.1:{port+2}"),
            ("CHAINFIRE_GOSSIP_KEY_FILE", "{data}/gossip.key"),
            ("CHAINFIRE_GOSSIP_ROLES", "[\"control-plane\", \"worker\"]"),
            (
                "CHAINFIRE_GOSSIP_SERVICES",
                "[\"flaredb={url:flaredb}\", \"iam={url:iam}\", \"flashdns={url:flashdns}\", \
                 \"fiberlb={url:fiberlb}\", \"prismnet={url:prismnet}\", \"lightningstor={url:lightningstor}\", \
                 \"plasmavmc={url:plasmavmc}\"]",
            ),
        ],
    },
    ServiceEntry {
        name: "flaredb",
        api_port: 2479,
        deps: &[(Requires, "chainfire")],
        env: &[("FLAREDB_RAFT_LISTEN", "127.0.0.1:{port+1}"), ("FLAREDB_CHAINFIRE_ENDPOINTS", "[\"{url:chainfire}\"]")],
    },
    ServiceEntry {
        name: "iam",
        api_port: 8080,
        deps: &[(Requires, "flaredb")],
        env: &[
            ("IAM_FLAREDB_ENDPOINTS", "[\"{url:flaredb}\"]"),
            ("IAM_BOOTSTRAP_SERVICES", "[\"lightningstor\", \"prismnet\", \"plasmavmc\"]"),
        ],
    },
    ServiceEntry {
        name: "plasmavmc",
        // The API, the scheduler (whichever node holds its claim) and this node's VM agent
        // (QEMU; software emulation where KVM does not run guests) in one process.
        api_port: 9090,
        deps: &[(Wants, "chainfire"), (Wants, "iam")],
        env: &[
            ("PLASMAVMC_CHAINFIRE_ENDPOINTS", "[\"{url:chainfire}\"]"),
            ("PLASMAVMC_IAM_URL", "{url:iam}"),
            // VMs' NICs as PrismNET ports, made as PlasmaVMC's own account.
            ("PLASMAVMC_PRISMNET_URL", "{url:prismnet}"),
            ("PLASMAVMC_IAM_CREDENTIALS_FILE", "{data}/../iam/services/plasmavmc.json"),
            // Volumes over NBD and imported images in LightningStor, as the same account.
            ("PLASMAVMC_LIGHTNINGSTOR_URL", "{url:lightningstor}"),
            ("PLASMAVMC_LIGHTNINGSTOR_NBD", "127.0.0.1:{port:10809}"),
            ("PLASMAVMC_LIGHTNINGSTOR_S3", "https://127.0.0.1:{port:9000}"),
        ],
    },
    ServiceEntry {
        name: "prismnet",
        // The API; the node's dataplane (VPC namespaces named prismnet-<vni>) in the same process.
        api_port: 9091,
        deps: &[(Wants, "chainfire"), (After, "iam")],
        env: &[
            ("PRISMNET_CHAINFIRE_ENDPOINTS", "[\"{url:chainfire}\"]"),
            ("PRISMNET_IAM_URL", "{url:iam}"),
            // Ports named in FlashDNS, as PrismNET's own account.
            ("PRISMNET_DNS_FLASHDNS", "{url:flashdns}"),
            ("PRISMNET_IAM_CREDENTIALS_FILE", "{data}/../iam/services/prismnet.json"),
        ],
    },
    ServiceEntry {
        name: "flashdns",
        // DNS over TLS and the API; `up` serves it (and DNS, port 53) moved above 1024.
        api_port: 853,
        deps: &[(Wants, "chainfire"), (After, "iam")],
        env: &[
            ("FLASHDNS_DNS_LISTEN", "127.0.0.1:{port:53}"),
            ("FLASHDNS_CHAINFIRE_ENDPOINTS", "[\"{url:chainfire}\"]"),
            ("FLASHDNS_IAM_URL", "{url:iam}"),
        ],
    },
    ServiceEntry {
        name: "fiberlb",
        // The API; listeners bind the ports tenants configure.
        api_port: 9092,
        deps: &[(Wants, "chainfire"), (After, "iam")],
        env: &[("FIBERLB_CHAINFIRE_ENDPOINTS", "[\"{url:chainfire}\"]"), ("FIBERLB_IAM_URL", "{url:iam}")],
    },
    ServiceEntry {
        name: "lightningstor",
        api_port: 9093,
        // Metadata in flaredb, and its identity and every decision from IAM: it cannot serve
        // without either.
        deps: &[(Wants, "chainfire"), (Requires, "flaredb"), (Requires, "iam")],
        env: &[
            ("LIGHTNINGSTOR_FLAREDB_ENDPOINTS", "[\"{url:flaredb}\"]"),
            ("LIGHTNINGSTOR_IAM_URL", "{url:iam}"),
            ("LIGHTNINGSTOR_IAM_CREDENTIALS_FILE", "{data}/../iam/services/lightningstor.json"),
            ("LIGHTNINGSTOR_S3_LISTEN", "127.0.0.1:{port:9000}"),
            // Volumes are kept in chainfire and served over NBD and iSCSI.
            ("LIGHTNINGSTOR_CHAINFIRE_ENDPOINTS", "[\"{url:chainfire}\"]"),
            ("LIGHTNINGSTOR_VOLUMES_NBD_LISTEN", "127.0.0.1:{port:10809}"),
            ("LIGHTNINGSTOR_VOLUMES_ISCSI_LISTEN", "127.0.0.1:{port:3260}"),
        ],
    },
    ServiceEntry {
        name: "k8shost",
        api_port: 10250,
        deps: &[(Wants, "chainfire"), (Wants, "prismnet"), (After, "plasmavmc"), (After, "iam")],
        env: &[],
    },
];

/// LightningStor's S3 port (its API port is 9093).
pub const S3_PORT: u16 = 9000;

/// FlashDNS's port for DNS over UDP and TCP (its API port, 853, serves DNS over TLS).
pub const DNS_PORT: u16 = 53;

/// What `photonctl up` tells the operator once a service is healthy, when the service wrote
/// the file (under its data dir): (service, file, message; `{path}` is the file's path).
pub const READY_NOTES: &[(&str, &str, &str)] = &[(
    "iam",
    "initial-admin-password",
    "iam: the first administrator is 'admin'; its password is in {path} (then: photonctl login admin)",
)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dependency_names_an_earlier_service() {
        for (i, entry) in CATALOG.iter().enumerate() {
            for (_, dep) in entry.deps {
                let pos = CATALOG.iter().position(|e| e.name == *dep);
                assert!(
                    pos.is_some_and(|p| p < i),
                    "{} depends on {dep}, which is not earlier in the table",
                    entry.name
                );
            }
        }
    }

    #[test]
    fn the_extra_ports_are_the_ones_the_services_are_told() {
        let env = |service: &str, key: &str| {
            let entry = CATALOG.iter().find(|e| e.name == service).unwrap();
            entry.env.iter().find(|(k, _)| *k == key).map(|(_, v)| *v).unwrap()
        };
        assert_eq!(env("lightningstor", "LIGHTNINGSTOR_S3_LISTEN"), format!("127.0.0.1:{{port:{S3_PORT}}}"));
        assert_eq!(env("flashdns", "FLASHDNS_DNS_LISTEN"), format!("127.0.0.1:{{port:{DNS_PORT}}}"));
    }

    #[test]
    fn ports_are_unique_where_installed_and_under_up() {
        let installed: Vec<u16> = CATALOG.iter().map(|e| e.api_port).chain([S3_PORT, DNS_PORT]).collect();
        let up: Vec<u16> = installed.iter().map(|&p| crate::endpoints::up_port(p, 0).unwrap()).collect();
        for mut ports in [installed, up] {
            let count = ports.len();
            ports.sort_unstable();
            ports.dedup();
            assert_eq!(ports.len(), count, "{ports:?}");
        }
    }
}
