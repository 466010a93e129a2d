//! PlasmaVMC's configuration: the runtime's `[server]` (the API port, 9090), `[log]`, `[tls]`,
//! plus `[chainfire]` (where VMs live), `[iam]` (who decides; its `credentials_file` is
//! PlasmaVMC's own account), `[prismnet]` (where NICs' ports are made), `[lightningstor]` (where
//! volumes are attached and imported images kept), `[images]` (imported or fetched), `[agent]` (this node's part:
//! what it offers, how it runs QEMU) and `[scheduler]` (how VMs are placed). Every key is
//! documented in `plasmavmc-server --help`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use photon_auth::IamSection;
use photon_resource::ChainfireSection;
use photon_runtime::{LogSection, Sections, ServerSection, ServiceConfig, ServiceSpec, TlsSection};
use serde::{Deserialize, Serialize};

use crate::scheduler::place::Strategy;

pub const SPEC: ServiceSpec =
    ServiceSpec { name: "plasmavmc", env_prefix: "PLASMAVMC", default_port: 9090, version: env!("CARGO_PKG_VERSION") };

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlasmavmcConfig {
    pub server: ServerSection,
    pub log: LogSection,
    pub tls: TlsSection,
    pub chainfire: ChainfireSection,
    pub iam: IamSection,
    pub prismnet: PrismnetSection,
    pub lightningstor: LightningstorSection,
    pub images: ImagesSection,
    pub agent: AgentSection,
    pub scheduler: SchedulerSection,
}

/// `[prismnet]`: VMs' NICs are PrismNET ports, made, bound and deleted through its API as
/// PlasmaVMC's service account (`iam.credentials_file`; IAM's `bootstrap.services` lists
/// `plasmavmc`). Without the account, VMs with NICs are refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrismnetSection {
    /// PrismNET's API (gRPC).
    pub url: String,
}

/// `[lightningstor]`: VMs' volumes are LightningStor volumes, attached through its API as
/// PlasmaVMC's service account and opened by QEMU over NBD with TLS (checked against the
/// platform CA). Without the account, VMs with volumes are refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightningstorSection {
    /// LightningStor's API (gRPC).
    pub url: String,
    /// Its NBD server, `host:port`, as QEMU on this node reaches it.
    pub nbd: String,
    /// Its S3 endpoint, which keeps imported images (`[images]`).
    pub s3: String,
}

/// `[images]`: where images' parts are kept. Imported, each part is copied once into a bucket
/// of PlasmaVMC's own in LightningStor when the image is registered (a presigned URL may expire
/// after), and nodes read it there; needs PlasmaVMC's service account. Not imported, every node
/// fetches from the URL the image names (for development without LightningStor).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesSection {
    pub import: bool,
    /// The platform bucket (in PlasmaVMC's own project; made at the first import).
    pub bucket: String,
}

/// `[agent]`: this node as a hypervisor. Every plasmavmc node serves the API; with the agent
/// on, it also offers its CPUs and memory to the scheduler and runs the VMs placed on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Run VMs on this node (needs QEMU; off on API-only nodes).
    pub enabled: bool,
    /// This node's name in placements (default: the host name).
    pub node: Option<String>,
    /// Physical CPUs offered (default: all; the scheduler multiplies by its CPU overcommit).
    pub vcpus: Option<u32>,
    /// Memory offered, in MiB (default: the node's memory less `reserved_memory_mib`).
    pub memory_mib: Option<u64>,
    /// Memory kept for the host when `memory_mib` is unset, in MiB.
    pub reserved_memory_mib: u64,
    /// The URL other plasmavmc nodes reach this node's API at, to relay its VMs' consoles
    /// (default: `https://<listen address>:<port>`, the host name for an unspecified address).
    pub advertise_url: Option<String>,
    /// Labels VMs' `node_selector` can ask for.
    pub labels: BTreeMap<String, String>,
    /// The QEMU binary.
    pub qemu: String,
    /// qemu-img, which makes VMs' disks.
    pub qemu_img: String,
    /// `auto` (KVM if /dev/kvm runs a guest, else software emulation), `kvm` or `tcg`.
    pub accel: String,
    /// VMs' run directories: sockets, console logs, disks (default `<data_dir>/vms`).
    pub run_dir: Option<PathBuf>,
    /// Fetched image parts (default `<data_dir>/images`).
    pub image_cache: Option<PathBuf>,
    /// Memory each VM's QEMU may use beyond its guest's, in MiB: its cgroup's memory limit is
    /// the flavour's memory plus this (its CPU quota is the flavour's vCPUs).
    pub memory_overhead_mib: u64,
    /// Each VM's QEMU runs as a uid of its own above this one (no account needed), in this
    /// group; 0: QEMU runs as the agent. Needs the agent to run as root (with CAP_SETUID,
    /// CAP_SETGID, CAP_CHOWN and CAP_DAC_OVERRIDE) and other users to be able to enter the
    /// directories above `run_dir` and `image_cache`; else QEMU runs as the agent, and the
    /// log and `/health` say why.
    pub qemu_uid_base: u32,
    /// How long a stopping VM has to shut down after the ACPI power button before it is
    /// ended, in milliseconds.
    pub stop_timeout_ms: u64,
    /// How often every VM of the node is looked at even without a change (a QEMU that exited,
    /// a console to report), in milliseconds.
    pub resync_ms: u64,
}

/// `[scheduler]`: how VMs are placed (by whichever node holds the scheduler's claim).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSection {
    /// Take part in the scheduler's election (at least one node must).
    pub enabled: bool,
    /// `spread` (even load) or `pack` (fewest nodes busy).
    pub strategy: Strategy,
    /// Virtual CPUs granted per CPU a node offers.
    pub cpu_overcommit: f64,
    /// Memory granted per MiB a node offers (1.0: none; guests' memory is not swapped).
    pub memory_overcommit: f64,
}

impl ServiceConfig for PlasmavmcConfig {
    fn defaults(spec: &ServiceSpec) -> Self {
        Self {
            server: ServerSection::defaults(spec),
            log: LogSection::default(),
            tls: TlsSection::default(),
            chainfire: ChainfireSection::default(),
            iam: IamSection::default(),
            prismnet: PrismnetSection { url: "https://127.0.0.1:9091".into() },
            lightningstor: LightningstorSection {
                url: "https://127.0.0.1:9093".into(),
                nbd: "127.0.0.1:10809".into(),
                s3: "https://127.0.0.1:9000".into(),
            },
            images: ImagesSection { import: true, bucket: "plasmavmc-images".into() },
            agent: AgentSection {
                enabled: true,
                node: None,
                vcpus: None,
                memory_mib: None,
                reserved_memory_mib: 512,
                advertise_url: None,
                labels: BTreeMap::new(),
                qemu: "qemu-system-x86_64".into(),
                qemu_img: "qemu-img".into(),
                accel: "auto".into(),
                run_dir: None,
                image_cache: None,
                memory_overhead_mib: 512,
                qemu_uid_base: 1_500_000,
                stop_timeout_ms: 30_000,
                resync_ms: 5_000,
            },
            scheduler: SchedulerSection {
                enabled: true,
                strategy: Strategy::Spread,
                cpu_overcommit: 4.0,
                memory_overcommit: 1.0,
            },
        }
    }

    fn sections(&self) -> Sections<'_> {
        Sections { server: &self.server, log: &self.log, tls: &self.tls }
    }
}
