//! `photonctl volume`: a project's block volumes in LightningStor — create, list, grow, snapshot,
//! clone, delete — and `attach-info`, which makes an attachment for a host and prints how QEMU
//! (and libnbd) reach the volume over NBD with TLS. `plan` maps a command to its one API call
//! without I/O; `run` sends it.

use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use crate::dns::{Owner, ProjectArgs};
use crate::resource::{create, execute, send, spec_of, Call, Show};
use crate::rest::Target;
use crate::OutputFormat;

/// LightningStor's NBD port (`volumes.nbd_listen`); `up` serves it there too (plus the offset).
pub const NBD_PORT: u16 = 10809;
/// LightningStor's iSCSI port (`volumes.iscsi_listen`); `up` serves it there too (plus the offset).
pub const ISCSI_PORT: u16 = 3260;

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume of --size (bytes, or with K, M, G or T: powers of 1024), with --replicas
    /// copies (default 3); --image BUCKET/KEY: a copy of that raw disk image (one of the
    /// project's objects).
    Create {
        name: String,
        #[arg(long)]
        size: String,
        #[arg(long)]
        replicas: Option<u8>,
        #[arg(long, value_name = "BUCKET/KEY")]
        image: Option<String>,
    },
    Ls,
    Show { name: String },
    /// Grow a volume to --size (a volume never shrinks).
    Resize {
        name: String,
        #[arg(long)]
        size: String,
    },
    /// Snapshots of a volume: take one, list them, delete one.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// A new volume NAME from snapshot VOLUME/SNAPSHOT (--size: larger than the snapshot).
    Clone {
        #[arg(value_name = "VOLUME/SNAPSHOT")]
        source: String,
        name: String,
        #[arg(long)]
        size: Option<String>,
    },
    /// Delete a volume (refused while it has snapshots or attachments).
    Rm { name: String },
    /// Attach a volume for the host named by --for (or the volume's --snapshot, read only), and
    /// print the NBD URL and the QEMU options that reach it. Only one host writes a volume at a
    /// time.
    AttachInfo {
        name: String,
        /// The host that attaches (a hypervisor's name). Not `host`: the global --host is another
        /// argument of that id.
        #[arg(long = "for", value_name = "HOST")]
        for_host: String,
        #[arg(long)]
        read_only: bool,
        #[arg(long)]
        snapshot: Option<String>,
        /// The host's iSCSI initiator name (iqn.…): with it, the volume's iSCSI target admits
        /// that initiator with this attachment's CHAP credentials.
        #[arg(long = "initiator", value_name = "IQN")]
        iqn: Option<String>,
        /// The NBD port, if not LightningStor's usual one.
        #[arg(long)]
        nbd_port: Option<u16>,
        /// The iSCSI port, if not LightningStor's usual one.
        #[arg(long)]
        iscsi_port: Option<u16>,
    },
    /// Remove the attachment of a volume for the host named by --for.
    Detach {
        name: String,
        #[arg(long = "for", value_name = "HOST")]
        for_host: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Take a snapshot of VOLUME now (between two writes).
    Create { volume: String, name: String },
    Ls { volume: String },
    /// Delete a snapshot (refused while a clone reads it).
    Rm { volume: String, name: String },
}

const VOLUME_COLUMNS: &[&str] = &["name", "size_bytes", "replicas", "source", "created_at"];
const SNAPSHOT_COLUMNS: &[&str] = &["name", "epoch", "size_bytes", "created_at"];

/// `10G`, `512M`, `4096`: bytes (powers of 1024).
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => anyhow::bail!("--size {text:?}: a number of bytes, or with K, M, G or T"),
    };
    let n: u64 = digits.parse().map_err(|_| anyhow::anyhow!("--size {text:?}: a number of bytes, or with K, M, G or T"))?;
    n.checked_mul(1 << shift).ok_or_else(|| anyhow::anyhow!("--size {text:?} is too large"))
}

/// An attachment's name from a host's: DNS-label characters, at most 63.
fn attachment_name(host: &str, snapshot: Option<&str>) -> String {
    let raw = match snapshot {
        Some(s) => format!("{host}-{s}"),
        None => host.to_string(),
    };
    let mut name: String =
        raw.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(63).collect();
    name = name.trim_matches('-').to_string();
    if name.is_empty() {
        name = "host".into();
    }
    name
}

pub fn plan(command: &VolumeCommand, owner: &Owner) -> anyhow::Result<Call> {
    let segment = photon_auth::sigv4::encode;
    let volumes = format!("/api/v1/orgs/{}/projects/{}/volumes", segment(&owner.org), segment(&owner.project));
    let volume = |name: &str| format!("{volumes}/{}", segment(name));
    let call = Call::new;
    Ok(match command {
        VolumeCommand::Create { name, size, replicas, image } => {
            let source = match image.as_deref().map(|i| i.split_once('/')) {
                None => None,
                Some(Some((bucket, key))) if !bucket.is_empty() && !key.is_empty() => {
                    Some(json!({"image": {"bucket": bucket, "key": key}}))
                }
                Some(_) => anyhow::bail!("--image takes BUCKET/KEY"),
            };
            let spec = spec_of(&[
                ("size_bytes", Some(json!(parse_size(size)?))),
                ("replicas", replicas.map(Value::from)),
                ("source", source),
            ]);
            call(Method::POST, volumes, create(name, spec), Show::Rows(VOLUME_COLUMNS))
        }
        VolumeCommand::Ls => call(Method::GET, volumes, None, Show::Rows(VOLUME_COLUMNS)),
        VolumeCommand::Show { name } => call(Method::GET, volume(name), None, Show::Rows(VOLUME_COLUMNS)),
        VolumeCommand::Resize { name, size } => {
            call(Method::PUT, volume(name), Some(json!({"size_bytes": parse_size(size)?})), Show::Modify(VOLUME_COLUMNS))
        }
        VolumeCommand::Snapshot { command } => match command {
            SnapshotCommand::Create { volume: v, name } => {
                call(Method::POST, format!("{}/snapshots", volume(v)), create(name, json!({})), Show::Rows(SNAPSHOT_COLUMNS))
            }
            SnapshotCommand::Ls { volume: v } => {
                call(Method::GET, format!("{}/snapshots", volume(v)), None, Show::Rows(SNAPSHOT_COLUMNS))
            }
            SnapshotCommand::Rm { volume: v, name } => call(
                Method::DELETE,
                format!("{}/snapshots/{}", volume(v), segment(name)),
                None,
                Show::Done(format!("deleted snapshot {name} of {v}")),
            ),
        },
        VolumeCommand::Clone { source, name, size } => {
            let Some((from, snapshot)) = source.split_once('/') else { anyhow::bail!("the source is VOLUME/SNAPSHOT") };
            // Without --size the server refuses, naming the snapshot's size; with it, checked.
            let size = match size {
                Some(size) => Some(json!(parse_size(size)?)),
                None => None,
            };
            let spec = spec_of(&[
                ("size_bytes", size),
                ("source", Some(json!({"snapshot": {"volume": from, "snapshot": snapshot}}))),
            ]);
            call(Method::POST, volumes, create(name, spec), Show::Rows(VOLUME_COLUMNS))
        }
        VolumeCommand::Rm { name } => call(Method::DELETE, volume(name), None, Show::Done(format!("deleted volume {name}"))),
        VolumeCommand::AttachInfo { name, for_host: host, read_only, snapshot, iqn, .. } => {
            let spec = spec_of(&[
                ("host", Some(json!(host))),
                ("read_only", read_only.then_some(json!(true))),
                ("snapshot", snapshot.clone().map(Value::from)),
                ("initiator", iqn.clone().map(Value::from)),
            ]);
            let body = create(&attachment_name(host, snapshot.as_deref()), spec);
            call(Method::POST, format!("{}/attachments", volume(name)), body, Show::Custom)
        }
        VolumeCommand::Detach { name, for_host: host } => call(
            Method::DELETE,
            format!("{}/attachments/{}", volume(name), segment(&attachment_name(host, None))),
            None,
            Show::Done(format!("detached {host} from volume {name}")),
        ),
    })
}

/// Where an attachment's volume is reached.
pub struct Reach<'a> {
    pub host: &'a str,
    pub nbd_port: u16,
    pub iscsi_port: u16,
    /// `org.project.volume`, the tail of the volume's iSCSI target name.
    pub target: String,
    /// The attachment's name (its CHAP user) and the initiator it admits.
    pub attachment: &'a str,
    pub initiator: Option<&'a str>,
}

/// What `attach-info` prints for an attachment's `token`.
pub fn attach_info(volume: &str, reach: &Reach, token: &str, ca: &std::path::Path, read_only: bool) -> Value {
    let (host, port) = (reach.host, reach.nbd_port);
    let host_in_url = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    let mut info = json!({
        "volume": volume,
        "read_only": read_only,
        "export": token,
        "nbd_url": format!("nbds://{host_in_url}:{port}/{token}"),
        "qemu": format!(
            "-object tls-creds-x509,id=tls0,endpoint=client,dir=DIR -blockdev driver=nbd,node-name={volume},server.type=inet,server.host={host},server.port={port},export={token},tls-creds=tls0{}",
            if read_only { ",read-only=on" } else { "" }
        ),
        "tls": format!("DIR holds the platform CA as ca-cert.pem (cp {} DIR/ca-cert.pem)", ca.display()),
    });
    if let Some(initiator) = reach.initiator {
        let iqn = format!("iqn.2026-12.io.photoncloud:{}", reach.target);
        let (user, iport) = (reach.attachment, reach.iscsi_port);
        info["iscsi_url"] = json!(format!("iscsi://{user}%{token}@{host_in_url}:{iport}/{iqn}/0"));
        info["iscsi_qemu"] = json!(format!(
            "-blockdev driver=iscsi,node-name={volume},transport=tcp,portal={host_in_url}:{iport},target={iqn},lun=0,user={user},password={token},initiator-name={initiator}"
        ));
    }
    info
}

pub async fn run(target: Target, args: ProjectArgs, command: VolumeCommand, output: OutputFormat) -> anyhow::Result<()> {
    // Bad arguments are refused before logging in.
    plan(&command, &Owner { org: String::new(), project: String::new() })?;
    let ca = target.ca.clone();
    let offset = target.endpoints.port_offset;
    let (rest, owner) = crate::rest::session(target, &args, "lightningstor").await?;
    let call = plan(&command, &owner)?;
    let VolumeCommand::AttachInfo { name, read_only, snapshot, nbd_port, iscsi_port, iqn, .. } = &command else {
        return execute(&rest, "lightningstor", call, output).await;
    };
    let made = send(&rest, "lightningstor", call.method, &call.path, call.body.as_ref()).await?.json()?;
    let token = made["spec"]["token"].as_str().unwrap_or_default();
    let port = nbd_port.unwrap_or(NBD_PORT.saturating_add(offset));
    let ca = match ca {
        Some(ca) => ca,
        None => crate::iam::session().await?.2.ca,
    };
    let host = rest.host();
    let reach = Reach {
        host: &host,
        nbd_port: port,
        iscsi_port: iscsi_port.unwrap_or(crate::endpoints::up_port(ISCSI_PORT, offset).unwrap_or(ISCSI_PORT)),
        target: format!("{}.{}.{name}", owner.org, owner.project),
        attachment: made["metadata"]["name"].as_str().unwrap_or_default(),
        initiator: iqn.as_deref(),
    };
    let info = attach_info(name, &reach, token, &ca, *read_only || snapshot.is_some());
    match output {
        OutputFormat::Json => println!("{info}"),
        OutputFormat::Table => {
            for key in ["volume", "read_only", "nbd_url", "qemu", "tls", "iscsi_url", "iscsi_qemu"] {
                if !info[key].is_null() {
                    println!("{key}: {}", info[key].as_str().map(str::to_string).unwrap_or_else(|| info[key].to_string()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Line {
        #[command(subcommand)]
        command: VolumeCommand,
    }

    fn planned(args: &[&str]) -> anyhow::Result<Call> {
        let line = Line::try_parse_from(std::iter::once("volume").chain(args.iter().copied()))?;
        plan(&line.command, &Owner { org: "acme".into(), project: "web".into() })
    }

    const VOLUMES: &str = "/api/v1/orgs/acme/projects/web/volumes";

    #[test]
    fn commands_map_to_the_volume_routes() {
        let made = planned(&["create", "disk", "--size", "10G", "--replicas", "1"]).unwrap();
        assert_eq!((made.method, made.path.as_str()), (Method::POST, VOLUMES));
        assert_eq!(made.body, Some(json!({"name": "disk", "spec": {"size_bytes": 10u64 << 30, "replicas": 1}})));
        let grown = planned(&["resize", "disk", "--size", "20GiB"]).unwrap();
        assert_eq!((grown.method, grown.show), (Method::PUT, Show::Modify(VOLUME_COLUMNS)));
        assert_eq!(grown.body, Some(json!({"size_bytes": 20u64 << 30})));
        let snap = planned(&["snapshot", "create", "disk", "s1"]).unwrap();
        assert_eq!(snap.path, format!("{VOLUMES}/disk/snapshots"));
        let image = planned(&["create", "vm", "--size", "10G", "--image", "images/debian/12.raw"]).unwrap();
        assert_eq!(image.body.unwrap()["spec"]["source"], json!({"image": {"bucket": "images", "key": "debian/12.raw"}}));
        assert!(planned(&["create", "vm", "--size", "10G", "--image", "nokey"]).is_err());
        let clone = planned(&["clone", "disk/s1", "copy", "--size", "10G"]).unwrap();
        assert_eq!(clone.body.unwrap()["spec"]["source"], json!({"snapshot": {"volume": "disk", "snapshot": "s1"}}));
        let attach = planned(&["attach-info", "disk", "--for", "HV1.example"]).unwrap();
        assert_eq!(attach.path, format!("{VOLUMES}/disk/attachments"));
        assert_eq!(attach.body, Some(json!({"name": "hv1-example", "spec": {"host": "HV1.example"}})));
        let detach = planned(&["detach", "disk", "--for", "HV1.example"]).unwrap();
        assert_eq!((detach.method, detach.path.as_str()), (Method::DELETE, &*format!("{VOLUMES}/disk/attachments/hv1-example")));
    }

    #[test]
    fn sizes_and_sources_are_checked_before_any_request() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1t").unwrap(), 1 << 40);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert!(planned(&["clone", "disk", "copy"]).is_err(), "the source names a snapshot");
    }

    #[test]
    fn attach_info_gives_the_nbd_url_and_qemus_options() {
        let reach = |host| Reach { host, nbd_port: 10809, iscsi_port: 3260, target: "acme.web.disk".into(), attachment: "hv1", initiator: None };
        let info = attach_info("disk", &reach("10.0.0.5"), "ab12", std::path::Path::new("/ca.crt"), false);
        assert_eq!(info["nbd_url"], "nbds://10.0.0.5:10809/ab12");
        let qemu = info["qemu"].as_str().unwrap();
        assert!(qemu.contains("server.host=10.0.0.5,server.port=10809,export=ab12,tls-creds=tls0"), "{qemu}");
        assert!(!qemu.contains("read-only"));
        assert!(info["iscsi_url"].is_null(), "no initiator, no iSCSI");
        let ro = attach_info("disk", &reach("::1"), "ab12", std::path::Path::new("/ca.crt"), true);
        assert_eq!(ro["nbd_url"], "nbds://[::1]:10809/ab12");
        assert!(ro["qemu"].as_str().unwrap().ends_with(",read-only=on"));
        let iscsi = attach_info("disk", &Reach { initiator: Some("iqn.2026-12.x:hv1"), ..reach("10.0.0.5") }, "ab12", std::path::Path::new("/ca.crt"), false);
        assert_eq!(iscsi["iscsi_url"], "iscsi://hv1%ab12@10.0.0.5:3260/iqn.2026-12.io.photoncloud:acme.web.disk/0");
        assert!(iscsi["iscsi_qemu"].as_str().unwrap().ends_with("user=hv1,password=ab12,initiator-name=iqn.2026-12.x:hv1"));
    }
}
