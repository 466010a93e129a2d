//! `photonctl vm`, `image` and `flavor`: a project's VMs, images and flavours in PlasmaVMC
//! through its REST API as the saved login. `plan` maps a command to its one API call, without
//! I/O; `run` sends it and prints the answer. `vm create` and `start` then follow the VM's
//! state transitions until it runs (or fails, saying why).

use std::time::{Duration, Instant};

use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use crate::dns::{Owner, ProjectArgs};
use crate::resource::{create, execute, send, spec_of, Call, Show};
use crate::rest::{Rest, Target};
use crate::OutputFormat;

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Create a VM of --flavor and --image and wait until it runs (--no-wait: return at once).
    Create {
        name: String,
        #[arg(long)]
        flavor: String,
        #[arg(long)]
        image: String,
        /// An OpenSSH public key for the guest (repeatable).
        #[arg(long = "ssh-key", value_name = "KEY")]
        ssh_keys: Vec<String>,
        /// A file of cloud-init user data.
        #[arg(long, value_name = "FILE")]
        user_data: Option<std::path::PathBuf>,
        /// Placed again on a live node if its node dies (default: marked error).
        #[arg(long)]
        restart_elsewhere: bool,
        /// No two VMs of the project's GROUP share a node.
        #[arg(long, value_name = "GROUP")]
        anti_affinity: Option<String>,
        /// A NIC on a VPC: `VPC/SUBNET` or `VPC/SUBNET:GROUP,GROUP` with security groups
        /// (repeatable; the first is the guest's eth0).
        #[arg(long = "nic", value_name = "VPC/SUBNET[:GROUPS]")]
        nics: Vec<String>,
        /// Create it stopped.
        #[arg(long)]
        stopped: bool,
        #[arg(long)]
        no_wait: bool,
    },
    Ls,
    Show {
        name: String,
    },
    /// Start a stopped VM and wait until it runs.
    Start {
        name: String,
    },
    /// Stop a VM: the ACPI power button, then ended after the node's stop timeout.
    Stop {
        name: String,
    },
    /// Move a running VM to another node while it runs (its root disk must be a volume); waits
    /// until it runs there and prints the guest's downtime.
    Migrate {
        name: String,
        /// The node to move to (default: the scheduler's choice).
        #[arg(long, value_name = "NODE")]
        to: Option<String>,
    },
    /// Reset a running VM.
    Reboot {
        name: String,
    },
    /// Delete a VM: its QEMU ended and its disk and files removed on its node.
    Rm {
        name: String,
    },
    /// Attach to a running VM's serial console: what it printed lately, then live; what you
    /// type goes to the guest. Ctrl-] detaches.
    Console {
        name: String,
        /// Bytes of what the console printed before to show first.
        #[arg(long, default_value_t = 16384)]
        backlog: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Register an image: a disk (--disk, --format raw|qcow2) and/or a kernel to boot directly
    /// (--kernel, --initrd, --cmdline). Each part is a URL PlasmaVMC imports (it may carry its
    /// SHA-256 as URL#sha256=HEX; a presigned LightningStor URL, say), or a local FILE this
    /// command uploads. Either way the image is ready once every part is in PlasmaVMC's bucket.
    Create {
        name: String,
        #[arg(long, value_name = "URL|FILE")]
        disk: Option<String>,
        #[arg(long)]
        format: Option<String>,
        #[arg(long, value_name = "URL|FILE")]
        kernel: Option<String>,
        #[arg(long, value_name = "URL|FILE")]
        initrd: Option<String>,
        #[arg(long)]
        cmdline: Option<String>,
    },
    Ls,
    Show {
        name: String,
    },
    Rm {
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FlavorCommand {
    /// Create a flavour: --vcpus, --memory (MiB) and --disk (GiB).
    Create {
        name: String,
        #[arg(long)]
        vcpus: u32,
        #[arg(long, value_name = "MIB")]
        memory: u64,
        #[arg(long, value_name = "GIB")]
        disk: u64,
    },
    Ls,
    Show {
        name: String,
    },
    Rm {
        name: String,
    },
}

const VM_COLUMNS: &[&str] = &["name", "flavor", "image", "power", "state", "node", "reason", "created_at"];
const IMAGE_COLUMNS: &[&str] = &["name", "format", "disk", "kernel", "created_at"];
const FLAVOR_COLUMNS: &[&str] = &["name", "vcpus", "memory_mib", "disk_gib", "created_at"];

/// `URL#sha256=HEX` as an image part; a local file (no `scheme://`) as a part to upload, its
/// SHA-256 filled in before the image is created (`local_parts`).
fn source(text: &str) -> Value {
    if !text.contains("://") {
        return json!({});
    }
    match text.split_once("#sha256=") {
        Some((url, sum)) => json!({"url": url, "sha256": sum}),
        None => json!({"url": text}),
    }
}

/// The parts of `image create` given as local files: (part, file).
fn local_parts(command: &ImageCommand) -> Vec<(&'static str, std::path::PathBuf)> {
    let ImageCommand::Create { disk, kernel, initrd, .. } = command else { return Vec::new() };
    [("disk", disk), ("kernel", kernel), ("initrd", initrd)]
        .into_iter()
        .filter_map(|(part, value)| value.as_ref().filter(|v| !v.contains("://")).map(|v| (part, v.into())))
        .collect()
}

/// A file's SHA-256 in hex, read in 1 MiB pieces.
fn sha256_file(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        context.update(&buf[..n]);
    }
    Ok(context.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

fn project(owner: &Owner) -> String {
    let segment = photon_auth::sigv4::encode;
    format!("/api/v1/orgs/{}/projects/{}", segment(&owner.org), segment(&owner.project))
}

fn one(collection: &str, name: &str) -> String {
    format!("{collection}/{}", photon_auth::sigv4::encode(name))
}

pub fn plan_vm(command: &VmCommand, owner: &Owner) -> anyhow::Result<Call> {
    let vms = format!("{}/vms", project(owner));
    let rows = |method, path, body| Call::new(method, path, body, Show::Rows(VM_COLUMNS));
    Ok(match command {
        VmCommand::Create {
            name,
            flavor,
            image,
            ssh_keys,
            user_data,
            restart_elsewhere,
            anti_affinity,
            nics,
            stopped,
            ..
        } => {
            let nics = nics.iter().map(|nic| parse_nic(nic)).collect::<anyhow::Result<Vec<Value>>>()?;
            let user_data = match user_data {
                Some(path) => Some(Value::from(
                    std::fs::read_to_string(path)
                        .map_err(|e| anyhow::anyhow!("--user-data {}: {e}", path.display()))?,
                )),
                None => None,
            };
            let spec = spec_of(&[
                ("flavor", Some(json!(flavor))),
                ("image", Some(json!(image))),
                ("ssh_keys", (!ssh_keys.is_empty()).then(|| json!(ssh_keys))),
                ("user_data", user_data),
                ("restart_policy", restart_elsewhere.then(|| json!("elsewhere"))),
                ("anti_affinity", anti_affinity.clone().map(Value::from)),
                ("nics", (!nics.is_empty()).then(|| json!(nics))),
                ("power", stopped.then(|| json!("stopped"))),
            ]);
            rows(Method::POST, vms, create(name, spec))
        }
        VmCommand::Ls => rows(Method::GET, vms, None),
        VmCommand::Show { name } => rows(Method::GET, one(&vms, name), None),
        VmCommand::Start { name } => rows(Method::POST, format!("{}/start", one(&vms, name)), None),
        VmCommand::Stop { name } => rows(Method::POST, format!("{}/stop", one(&vms, name)), None),
        VmCommand::Reboot { name } => rows(Method::POST, format!("{}/reboot", one(&vms, name)), None),
        VmCommand::Migrate { name, to } => {
            let query = to.as_ref().map(|node| format!("?node={node}")).unwrap_or_default();
            rows(Method::POST, format!("{}/migrate{query}", one(&vms, name)), None)
        }
        VmCommand::Rm { name } => {
            Call::new(Method::DELETE, one(&vms, name), None, Show::Done(format!("deleted VM {name}")))
        }
        // The console is a gRPC stream (`crate::console`); its plan only reads the VM.
        VmCommand::Console { name, .. } => rows(Method::GET, one(&vms, name), None),
    })
}

pub fn plan_image(command: &ImageCommand, owner: &Owner) -> anyhow::Result<Call> {
    let images = format!("{}/images", project(owner));
    Ok(match command {
        ImageCommand::Create { name, disk, format, kernel, initrd, cmdline } => {
            if disk.is_none() && kernel.is_none() {
                anyhow::bail!("an image needs --disk, --kernel, or both");
            }
            let spec = spec_of(&[
                ("disk", disk.as_deref().map(source)),
                ("format", format.clone().map(Value::from)),
                ("kernel", kernel.as_deref().map(source)),
                ("initrd", initrd.as_deref().map(source)),
                ("cmdline", cmdline.clone().map(Value::from)),
            ]);
            Call::new(Method::POST, images, create(name, spec), Show::Rows(IMAGE_COLUMNS))
        }
        ImageCommand::Ls => Call::new(Method::GET, images, None, Show::Rows(IMAGE_COLUMNS)),
        ImageCommand::Show { name } => Call::new(Method::GET, one(&images, name), None, Show::Rows(IMAGE_COLUMNS)),
        ImageCommand::Rm { name } => {
            Call::new(Method::DELETE, one(&images, name), None, Show::Done(format!("deleted image {name}")))
        }
    })
}

pub fn plan_flavor(command: &FlavorCommand, owner: &Owner) -> anyhow::Result<Call> {
    let flavors = format!("{}/flavors", project(owner));
    Ok(match command {
        FlavorCommand::Create { name, vcpus, memory, disk } => {
            let spec = json!({"vcpus": vcpus, "memory_mib": memory, "disk_gib": disk});
            Call::new(Method::POST, flavors, create(name, spec), Show::Rows(FLAVOR_COLUMNS))
        }
        FlavorCommand::Ls => Call::new(Method::GET, flavors, None, Show::Rows(FLAVOR_COLUMNS)),
        FlavorCommand::Show { name } => Call::new(Method::GET, one(&flavors, name), None, Show::Rows(FLAVOR_COLUMNS)),
        FlavorCommand::Rm { name } => {
            Call::new(Method::DELETE, one(&flavors, name), None, Show::Done(format!("deleted flavor {name}")))
        }
    })
}

/// `VPC/SUBNET[:GROUP,GROUP]` as a NIC of a VM's spec.
fn parse_nic(text: &str) -> anyhow::Result<Value> {
    let (place, groups) = text.split_once(':').unwrap_or((text, ""));
    let Some((vpc, subnet)) = place.split_once('/') else {
        anyhow::bail!("--nic {text:?}: VPC/SUBNET, optionally followed by :GROUP,GROUP");
    };
    let groups: Vec<&str> = groups.split(',').filter(|g| !g.is_empty()).collect();
    Ok(json!({"vpc": vpc, "subnet": subnet, "security_groups": groups}))
}

/// Follows VM `path`'s live migration (its phases printed to stderr) until the status has
/// handled every migration asked for; how it went.
async fn wait_migrated(rest: &Rest, path: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last_phase = String::new();
    loop {
        let vm = send(rest, "plasmavmc", Method::GET, path, None).await?.json()?;
        let phase = vm["status"]["migration"]["phase"].as_str().unwrap_or_default().to_string();
        if !phase.is_empty() && phase != last_phase {
            eprintln!("  {phase} (to {})", vm["status"]["migration"]["target"].as_str().unwrap_or("?"));
            last_phase = phase;
        }
        let (asked, handled) = (vm["spec"]["migrations"].as_u64().unwrap_or(0), vm["status"]["migrations"].as_u64().unwrap_or(0));
        if handled >= asked && vm["status"]["migration"].is_null() {
            let record = &vm["status"]["last_migration"];
            if record["succeeded"] != true {
                anyhow::bail!("the VM did not migrate: {}", record["reason"].as_str().unwrap_or("no reason given"));
            }
            let downtime = record["downtime_ms"].as_u64().map(|d| format!("{d} ms")).unwrap_or_else(|| "unknown".into());
            eprintln!("running on {} (downtime {downtime})", record["to"].as_str().unwrap_or("?"));
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!("the migration has not ended after {} s (see photonctl vm show)", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Follows VM `path`'s transitions (printed to stderr as they happen) until it is `running`,
/// or fails with the reason of an `error`, or after `timeout`.
async fn wait_running(rest: &Rest, path: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut seen = 0;
    loop {
        let vm = send(rest, "plasmavmc", Method::GET, path, None).await?.json()?;
        let transitions = vm["status"]["transitions"].as_array().cloned().unwrap_or_default();
        for transition in transitions.iter().skip(seen) {
            let reason = transition["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
            eprintln!("  {}{reason}", transition["state"].as_str().unwrap_or("?"));
        }
        seen = seen.max(transitions.len());
        match vm["status"]["state"].as_str() {
            Some("running") => {
                let node = vm["status"]["node"].as_str().unwrap_or("?");
                let accel = vm["status"]["accel"].as_str().unwrap_or("?");
                eprintln!("running on {node} ({accel})");
                for nic in vm["status"]["nics"].as_array().into_iter().flatten() {
                    let (port, ip) = (nic["port"].as_str().unwrap_or("?"), nic["ip"].as_str().unwrap_or("?"));
                    eprintln!("address {ip} (port {port})");
                }
                return Ok(());
            }
            Some("error") => {
                anyhow::bail!("the VM failed: {}", vm["status"]["reason"].as_str().unwrap_or("no reason given"))
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            anyhow::bail!("the VM is not running after {} s (see photonctl vm show)", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn run_vm(target: Target, args: ProjectArgs, command: VmCommand, output: OutputFormat) -> anyhow::Result<()> {
    plan_vm(&command, &Owner { org: String::new(), project: String::new() })?;
    if let VmCommand::Console { name, backlog } = &command {
        let (located, owner) = crate::rest::located(target, &args, "plasmavmc").await?;
        return crate::console::attach(&located, &owner, name, *backlog).await;
    }
    let (rest, owner) = crate::rest::session(target, &args, "plasmavmc").await?;
    let call = plan_vm(&command, &owner)?;
    let follow = match &command {
        VmCommand::Create { name, stopped: false, no_wait: false, .. } | VmCommand::Start { name } => {
            Some(one(&format!("{}/vms", project(&owner)), name))
        }
        _ => None,
    };
    let migrating = match &command {
        VmCommand::Migrate { name, .. } => Some(one(&format!("{}/vms", project(&owner)), name)),
        _ => None,
    };
    execute(&rest, "plasmavmc", call, output).await?;
    if let Some(path) = follow {
        wait_running(&rest, &path, Duration::from_secs(300)).await?;
    }
    if let Some(path) = migrating {
        wait_migrated(&rest, &path, Duration::from_secs(600)).await?;
    }
    Ok(())
}

pub async fn run_image(
    target: Target,
    args: ProjectArgs,
    command: ImageCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    plan_image(&command, &Owner { org: String::new(), project: String::new() })?;
    let uploads = local_parts(&command);
    let mut sums = Vec::new();
    for (part, file) in &uploads {
        sums.push((*part, sha256_file(file)?));
    }
    let (rest, owner) = crate::rest::session(target, &args, "plasmavmc").await?;
    let mut call = plan_image(&command, &owner)?;
    if uploads.is_empty() {
        return execute(&rest, "plasmavmc", call, output).await;
    }
    if let Some(body) = call.body.as_mut() {
        for (part, sum) in &sums {
            body["spec"][*part]["sha256"] = Value::from(sum.as_str());
        }
    }
    let made = send(&rest, "plasmavmc", Method::POST, &call.path, call.body.as_ref()).await?.json()?;
    let image = one(&call.path, made["metadata"]["name"].as_str().unwrap_or_default());
    for (part, file) in uploads {
        let bytes = tokio::fs::read(&file).await.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        eprintln!("uploading {part}: {} ({} bytes)", file.display(), bytes.len());
        let answer = rest.send(Method::PUT, &format!("{image}/parts/{part}"), Some("application/octet-stream"), bytes.into()).await?;
        if !answer.success() {
            anyhow::bail!("plasmavmc refused the {part}: {}", crate::rest::refusal(&answer));
        }
    }
    execute(&rest, "plasmavmc", Call::new(Method::GET, image, None, Show::Rows(IMAGE_COLUMNS)), output).await
}

pub async fn run_flavor(
    target: Target,
    args: ProjectArgs,
    command: FlavorCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    plan_flavor(&command, &Owner { org: String::new(), project: String::new() })?;
    let (rest, owner) = crate::rest::session(target, &args, "plasmavmc").await?;
    execute(&rest, "plasmavmc", plan_flavor(&command, &owner)?, output).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Line {
        #[command(subcommand)]
        command: VmCommand,
    }

    const VMS: &str = "/api/v1/orgs/acme/projects/web/vms";

    #[test]
    fn commands_map_to_the_routes() {
        let owner = Owner { org: "acme".into(), project: "web".into() };
        let line = Line::try_parse_from([
            "vm",
            "create",
            "web1",
            "--flavor",
            "small",
            "--image",
            "debian",
            "--restart-elsewhere",
        ])
        .unwrap();
        let call = plan_vm(&line.command, &owner).unwrap();
        assert_eq!((call.method, call.path.as_str()), (Method::POST, VMS));
        assert_eq!(
            call.body,
            Some(
                json!({"name": "web1", "spec": {"flavor": "small", "image": "debian", "restart_policy": "elsewhere"}})
            )
        );
        let line = Line::try_parse_from([
            "vm", "create", "web2", "--flavor", "small", "--image", "debian", "--nic", "blue/front:web,ssh", "--nic", "blue/back",
        ])
        .unwrap();
        let nics = plan_vm(&line.command, &owner).unwrap().body.unwrap()["spec"]["nics"].clone();
        assert_eq!(
            nics,
            json!([{"vpc": "blue", "subnet": "front", "security_groups": ["web", "ssh"]}, {"vpc": "blue", "subnet": "back", "security_groups": []}])
        );
        let line = Line::try_parse_from(["vm", "create", "w", "--flavor", "s", "--image", "d", "--nic", "front"]).unwrap();
        assert!(plan_vm(&line.command, &owner).is_err(), "a NIC names its VPC and subnet");
        let line = Line::try_parse_from(["vm", "migrate", "web1", "--to", "hv2"]).unwrap();
        let call = plan_vm(&line.command, &owner).unwrap();
        assert_eq!((call.method, call.path.as_str()), (Method::POST, &*format!("{VMS}/web1/migrate?node=hv2")));
        let line = Line::try_parse_from(["vm", "stop", "web1"]).unwrap();
        let call = plan_vm(&line.command, &owner).unwrap();
        assert_eq!((call.method, call.path.as_str()), (Method::POST, &*format!("{VMS}/web1/stop")));
        let image = ImageCommand::Create {
            name: "g".into(),
            disk: None,
            format: None,
            kernel: Some(format!("http://h/k#sha256={}", "a".repeat(64))),
            initrd: None,
            cmdline: None,
        };
        let call = plan_image(&image, &owner).unwrap();
        assert_eq!(call.body.unwrap()["spec"], json!({"kernel": {"url": "http://h/k", "sha256": "a".repeat(64)}}));
        let empty = ImageCommand::Create {
            name: "g".into(),
            disk: None,
            format: None,
            kernel: None,
            initrd: None,
            cmdline: None,
        };
        assert!(plan_image(&empty, &owner).is_err(), "an image names a disk or a kernel");
        // A local file is a part to upload: declared without a URL.
        let local = ImageCommand::Create {
            name: "g".into(),
            disk: None,
            format: None,
            kernel: Some("http://h/k".into()),
            initrd: Some("./initrd.img".into()),
            cmdline: None,
        };
        let call = plan_image(&local, &owner).unwrap();
        assert_eq!(call.body.unwrap()["spec"], json!({"kernel": {"url": "http://h/k"}, "initrd": {}}));
        assert_eq!(local_parts(&local), vec![("initrd", std::path::PathBuf::from("./initrd.img"))]);
    }
}
