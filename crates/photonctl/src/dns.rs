//! `photonctl dns`: a project's zones and record sets in FlashDNS, through its REST API
//! (`rest.rs`) as the saved login. `plan` maps a command to its one API call, without I/O;
//! `run` sends it and prints the answer. `--org`/`--project` default to the login's: a token
//! names its holder's org, and a service account's principal its project.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use crate::rest::{refusal, Target};
use crate::table::show;
use crate::OutputFormat;

/// Whose zones: accepted anywhere after `dns`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ProjectArgs {
    /// The org the zones belong to. Default: the login's org.
    #[arg(long, global = true)]
    pub org: Option<String>,
    /// The project the zones belong to. Default: the login's project (a service account's).
    #[arg(long, global = true)]
    pub project: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Zones: create, ls, rm, import, export.
    Zone {
        #[command(subcommand)]
        command: ZoneCommand,
    },
    /// Record sets (the records of one name and type): set, ls, rm.
    Record {
        #[command(subcommand)]
        command: RecordCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ZoneCommand {
    /// Create a zone; its SOA and apex NS records are made from the flags.
    Create {
        /// The zone's name, e.g. example.com (a final dot is implied).
        zone: String,
        /// TTL of the SOA and apex NS records, in seconds. Default: 3600.
        #[arg(long, value_name = "SECS")]
        ttl: Option<u32>,
        /// An apex name server (repeatable). Default: ns1.<zone>.
        #[arg(long = "nameserver", value_name = "NAME")]
        nameservers: Vec<String>,
    },
    /// List the project's zones.
    Ls,
    /// Delete a zone and all its records.
    Rm {
        /// The zone, e.g. example.com.
        zone: String,
    },
    /// Replace a zone's records (its SOA values and apex NS too) with an RFC 1035 zone file's.
    Import {
        /// The zone, e.g. example.com.
        zone: String,
        /// The zone file; - reads it from stdin.
        file: PathBuf,
    },
    /// Print a zone as an RFC 1035 zone file.
    Export {
        /// The zone, e.g. example.com.
        zone: String,
    },
    /// Sign a zone with DNSSEC (a new key), or with --rollover add a second key that signs
    /// beside the current one; prints each key's DS record for the parent zone.
    Sign {
        /// The zone, e.g. example.com.
        zone: String,
        /// ECDSAP256SHA256 (default) or ED25519.
        #[arg(long, default_value = "ECDSAP256SHA256")]
        algorithm: String,
        /// Start a key rollover: the new key signs beside the old until --retire removes it.
        #[arg(long, conflicts_with_all = ["retire", "off"])]
        rollover: bool,
        /// Remove the key with this tag (the old one, once the parent's DS names the new).
        #[arg(long, value_name = "TAG", conflicts_with = "off")]
        retire: Option<u16>,
        /// Stop signing the zone.
        #[arg(long)]
        off: bool,
    },
    /// Show a zone's DNSSEC keys and their DS records.
    Keys {
        /// The zone, e.g. example.com.
        zone: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RecordCommand {
    /// Set the records of one name and type, replacing any there were.
    Set {
        /// The zone, e.g. example.com.
        zone: String,
        /// The owner: relative to the zone (www, @ for the apex) or absolute (www.example.com.).
        name: String,
        /// The record type: A, AAAA, CNAME, DNAME, MX, TXT, SRV, NS, PTR, CAA, SSHFP, TLSA.
        #[arg(value_name = "TYPE")]
        rtype: String,
        /// Each record's data as a zone file writes it: 192.0.2.1, "10 mail", '"v=spf1 -all"'.
        #[arg(required = true)]
        data: Vec<String>,
        /// TTL of the records, in seconds.
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        ttl: u32,
    },
    /// List a zone's record sets.
    Ls {
        /// The zone, e.g. example.com.
        zone: String,
    },
    /// Delete the records of one name and type.
    Rm {
        /// The zone, e.g. example.com.
        zone: String,
        /// The owner, as for set.
        name: String,
        #[arg(value_name = "TYPE")]
        rtype: String,
    },
}

/// The org and project whose zones a command is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub org: String,
    pub project: String,
}

/// What the request carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Empty,
    Json(Value),
    /// A zone file, read when the call is sent (`-`: stdin).
    ZoneFile(PathBuf),
}

/// How the answer is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Show {
    Zone,
    /// A page of zones; the following pages are fetched too.
    Zones,
    RecordSet,
    RecordSets,
    /// A zone's DNSSEC keys, each with its DS record.
    Keys,
    /// The body as it is (a zone file).
    Text,
    /// No body: this message instead.
    Done(String),
}

/// One call of FlashDNS's API.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: Method,
    /// The path, each variable segment percent-encoded.
    pub path: String,
    pub body: Body,
    pub show: Show,
}

/// The columns of a zone in a table (rows made by `zone_row`).
const KEY_COLUMNS: &[&str] = &["tag", "algorithm", "ds"];
const ZONE_COLUMNS: &[&str] = &["name", "serial", "ttl", "nameservers", "created_at"];
const RECORD_COLUMNS: &[&str] = &["name", "type", "ttl", "data"];

/// The org and project: the flags, else what the login's token says (`org` claim, and a
/// service account's `sa:<org>/<project>/<name>` principal).
pub fn owner(args: &ProjectArgs, principal: &str, token_org: &str) -> anyhow::Result<Owner> {
    let account: Vec<&str> = principal.strip_prefix("sa:").map(|rest| rest.split('/').collect()).unwrap_or_default();
    let (account_org, account_project) = match account.as_slice() {
        [org, project, _name] => (Some(*org), Some(*project)),
        _ => (None, None),
    };
    let from_login = |value: Option<&str>| value.filter(|v| !v.is_empty()).map(str::to_string);
    let org = match args.org.clone().or_else(|| from_login(Some(token_org))).or_else(|| from_login(account_org)) {
        Some(org) => org,
        None => bail!("--org is required: the login ({principal}) belongs to no org"),
    };
    let project = match args.project.clone().or_else(|| from_login(account_project)) {
        Some(project) => project,
        None => bail!("--project is required: the login ({principal}) names no project (e.g. --project web)"),
    };
    Ok(Owner { org, project })
}

/// The API call `command` makes for `owner`.
pub fn plan(command: &DnsCommand, owner: &Owner) -> Call {
    let segment = photon_auth::sigv4::encode;
    let zones = format!("/api/v1/orgs/{}/projects/{}/zones", segment(&owner.org), segment(&owner.project));
    let zone_path = |zone: &str| format!("{zones}/{}", segment(zone));
    let record_path = |zone: &str, name: &str, rtype: &str| {
        format!("{}/records/{}/{}", zone_path(zone), segment(name), segment(rtype))
    };
    let call = |method: Method, path: String, body: Body, show: Show| Call { method, path, body, show };
    match command {
        DnsCommand::Zone { command } => match command {
            ZoneCommand::Create { zone, ttl, nameservers } => {
                let mut spec = json!({ "name": zone });
                if let Some(ttl) = ttl {
                    spec["ttl"] = json!(ttl);
                }
                if !nameservers.is_empty() {
                    spec["nameservers"] = json!(nameservers);
                }
                call(Method::POST, zones, Body::Json(spec), Show::Zone)
            }
            ZoneCommand::Ls => call(Method::GET, zones, Body::Empty, Show::Zones),
            ZoneCommand::Rm { zone } => {
                call(Method::DELETE, zone_path(zone), Body::Empty, Show::Done(format!("deleted zone {zone}")))
            }
            ZoneCommand::Import { zone, file } => {
                call(Method::POST, format!("{}/import", zone_path(zone)), Body::ZoneFile(file.clone()), Show::Zone)
            }
            ZoneCommand::Export { zone } => {
                call(Method::GET, format!("{}/export", zone_path(zone)), Body::Empty, Show::Text)
            }
            ZoneCommand::Sign { zone, algorithm, rollover, retire, off } => {
                let dnssec = format!("{}/dnssec", zone_path(zone));
                let body = Body::Json(json!({ "algorithm": algorithm }));
                match (rollover, retire, off) {
                    (_, _, true) => call(Method::DELETE, dnssec, Body::Empty, Show::Keys),
                    (_, Some(tag), _) => call(Method::DELETE, format!("{dnssec}/keys/{tag}"), Body::Empty, Show::Keys),
                    (true, _, _) => call(Method::POST, format!("{dnssec}/rollover"), body, Show::Keys),
                    _ => call(Method::POST, dnssec, body, Show::Keys),
                }
            }
            ZoneCommand::Keys { zone } => call(Method::GET, format!("{}/dnssec", zone_path(zone)), Body::Empty, Show::Keys),
        },
        DnsCommand::Record { command } => match command {
            RecordCommand::Set { zone, name, rtype, data, ttl } => call(
                Method::PUT,
                record_path(zone, name, rtype),
                Body::Json(json!({ "ttl": ttl, "data": data })),
                Show::RecordSet,
            ),
            RecordCommand::Ls { zone } => {
                call(Method::GET, format!("{}/records", zone_path(zone)), Body::Empty, Show::RecordSets)
            }
            RecordCommand::Rm { zone, name, rtype } => call(
                Method::DELETE,
                record_path(zone, name, rtype),
                Body::Empty,
                Show::Done(format!("deleted {name} {rtype} in {zone}")),
            ),
        },
    }
}

pub async fn run(target: Target, args: ProjectArgs, command: DnsCommand, output: OutputFormat) -> anyhow::Result<()> {
    let (rest, owner) = crate::rest::session(target, &args, "flashdns").await?;
    let call = plan(&command, &owner);
    let (content_type, body) = match &call.body {
        Body::Empty => (None, Bytes::new()),
        Body::Json(value) => (Some("application/json"), Bytes::from(value.to_string())),
        Body::ZoneFile(path) => (Some("text/dns"), Bytes::from(read_zone_file(path)?)),
    };
    let answer = rest.send(call.method.clone(), &call.path, content_type, body).await?;
    if !answer.success() {
        bail!("flashdns refused: {}", refusal(&answer));
    }
    match call.show {
        Show::Zone => {
            let zone = answer.json()?;
            show(output, &zone, &[zone_row(&zone)], ZONE_COLUMNS)
        }
        Show::Zones => {
            let mut page = answer.json()?;
            let mut zones: Vec<Value> = page["zones"].as_array().cloned().unwrap_or_default();
            while let Some(token) = page["next_page_token"].as_str().filter(|t| !t.is_empty()) {
                let path = format!("{}?page_token={}", call.path, photon_auth::sigv4::encode(token));
                let answer = rest.send(Method::GET, &path, None, Bytes::new()).await?;
                if !answer.success() {
                    bail!("flashdns refused the next page: {}", refusal(&answer));
                }
                page = answer.json()?;
                zones.extend(page["zones"].as_array().cloned().unwrap_or_default());
            }
            let rows: Vec<Value> = zones.iter().map(zone_row).collect();
            show(output, &json!({ "zones": zones, "next_page_token": null }), &rows, ZONE_COLUMNS)
        }
        Show::RecordSet => {
            let set = answer.json()?;
            show(output, &set, std::slice::from_ref(&set), RECORD_COLUMNS)
        }
        Show::RecordSets => {
            let doc = answer.json()?;
            let sets = doc["record_sets"].as_array().cloned().unwrap_or_default();
            show(output, &doc, &sets, RECORD_COLUMNS)
        }
        Show::Keys => {
            let doc = answer.json()?;
            let keys: Vec<Value> = doc["keys"].as_array().cloned().unwrap_or_default();
            let rows: Vec<Value> = keys
                .iter()
                .map(|k| json!({ "tag": k["tag"], "algorithm": k["algorithm"], "ds": k["ds"] }))
                .collect();
            show(output, &doc, &rows, KEY_COLUMNS)
        }
        Show::Text => print!("{}", String::from_utf8_lossy(&answer.body)),
        Show::Done(message) => match output {
            OutputFormat::Json => println!("{}", json!({ "ok": message })),
            OutputFormat::Table => println!("{message}"),
        },
    }
    Ok(())
}

/// A zone as a table row: its name, serial, TTL, name servers and creation time.
fn zone_row(zone: &Value) -> Value {
    json!({
        "name": zone["spec"]["name"],
        "serial": zone["serial"],
        "ttl": zone["spec"]["ttl"],
        "nameservers": zone["spec"]["nameservers"],
        "created_at": zone["metadata"]["created_ms"].as_i64().map(|ms| ms / 1000),
    })
}

fn read_zone_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut text = Vec::new();
        std::io::stdin().lock().read_to_end(&mut text).context("reading the zone file from stdin")?;
        return Ok(text);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The dns part of a command line, parsed as photonctl would.
    #[derive(Debug, Parser)]
    struct Line {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(subcommand)]
        command: DnsCommand,
    }

    fn parse(args: &[&str]) -> Line {
        Line::try_parse_from(std::iter::once("dns").chain(args.iter().copied())).unwrap()
    }

    fn acme() -> Owner {
        Owner { org: "acme".into(), project: "web".into() }
    }

    fn planned(args: &[&str]) -> Call {
        plan(&parse(args).command, &acme())
    }

    const ZONES: &str = "/api/v1/orgs/acme/projects/web/zones";

    #[test]
    fn zone_commands_map_to_zone_routes() {
        let create =
            planned(&["zone", "create", "example.com", "--ttl", "600", "--nameserver", "a.ns.", "--nameserver", "b"]);
        assert_eq!((create.method, create.path.as_str(), create.show), (Method::POST, ZONES, Show::Zone));
        assert_eq!(create.body, Body::Json(json!({"name": "example.com", "ttl": 600, "nameservers": ["a.ns.", "b"]})));
        // Left-out flags are left to the server's defaults.
        assert_eq!(planned(&["zone", "create", "example.com."]).body, Body::Json(json!({"name": "example.com."})));

        let ls = planned(&["zone", "ls"]);
        assert_eq!((ls.method, ls.path.as_str(), ls.body, ls.show), (Method::GET, ZONES, Body::Empty, Show::Zones));
        let rm = planned(&["zone", "rm", "example.com."]);
        assert_eq!((rm.method, rm.path), (Method::DELETE, format!("{ZONES}/example.com.")));
        assert_eq!(rm.show, Show::Done("deleted zone example.com.".into()));
        let import = planned(&["zone", "import", "example.com", "-"]);
        assert_eq!((import.method, import.path), (Method::POST, format!("{ZONES}/example.com/import")));
        assert_eq!(import.body, Body::ZoneFile("-".into()));
        let sign = planned(&["zone", "sign", "example.com", "--algorithm", "ED25519"]);
        assert_eq!((sign.method, sign.path.as_str()), (Method::POST, format!("{ZONES}/example.com/dnssec").as_str()));
        assert_eq!(sign.body, Body::Json(json!({"algorithm": "ED25519"})));
        let roll = planned(&["zone", "sign", "example.com", "--rollover"]);
        assert_eq!((roll.method, roll.path), (Method::POST, format!("{ZONES}/example.com/dnssec/rollover")));
        let retire = planned(&["zone", "sign", "example.com", "--retire", "4242"]);
        assert_eq!((retire.method, retire.path), (Method::DELETE, format!("{ZONES}/example.com/dnssec/keys/4242")));
        let off = planned(&["zone", "sign", "example.com", "--off"]);
        assert_eq!((off.method, off.path), (Method::DELETE, format!("{ZONES}/example.com/dnssec")));
        let keys = planned(&["zone", "keys", "example.com"]);
        assert_eq!((keys.method, keys.show), (Method::GET, Show::Keys));
        let export = planned(&["zone", "export", "example.com"]);
        assert_eq!(
            (export.method, export.path, export.show),
            (Method::GET, format!("{ZONES}/example.com/export"), Show::Text)
        );
    }

    #[test]
    fn record_commands_map_to_record_routes_with_segments_encoded() {
        let set = planned(&["record", "set", "example.com", "www", "A", "192.0.2.1", "192.0.2.2", "--ttl", "60"]);
        assert_eq!((set.method, set.path), (Method::PUT, format!("{ZONES}/example.com/records/www/A")));
        assert_eq!(set.body, Body::Json(json!({"ttl": 60, "data": ["192.0.2.1", "192.0.2.2"]})));
        let txt = planned(&["record", "set", "example.com", "@", "TXT", "\"v=spf1 -all\""]);
        assert_eq!(txt.path, format!("{ZONES}/example.com/records/%40/TXT"));
        assert_eq!(txt.body, Body::Json(json!({"ttl": 300, "data": ["\"v=spf1 -all\""]})), "the default TTL is 300");
        let wild = planned(&["record", "set", "example.com", "*.dev", "MX", "10 mail"]);
        assert_eq!(wild.path, format!("{ZONES}/example.com/records/%2A.dev/MX"));
        assert_eq!(wild.body, Body::Json(json!({"ttl": 300, "data": ["10 mail"]})));

        let ls = planned(&["record", "ls", "example.com"]);
        assert_eq!(
            (ls.method, ls.path, ls.show),
            (Method::GET, format!("{ZONES}/example.com/records"), Show::RecordSets)
        );
        let rm = planned(&["record", "rm", "example.com", "www", "A"]);
        assert_eq!((rm.method, rm.path), (Method::DELETE, format!("{ZONES}/example.com/records/www/A")));
        assert!(Line::try_parse_from(["dns", "record", "set", "example.com", "www", "A"]).is_err(), "data is required");
    }

    #[test]
    fn org_and_project_come_from_the_flags_else_the_login() {
        let line = parse(&["zone", "ls", "--project", "web"]);
        assert_eq!(owner(&line.project, "user:alice", "acme").unwrap(), acme());
        let line = parse(&["--org", "beta", "zone", "ls", "--project", "api"]);
        let beta = Owner { org: "beta".into(), project: "api".into() };
        assert_eq!(owner(&line.project, "user:alice", "acme").unwrap(), beta);
        // A service account's principal names its project.
        assert_eq!(owner(&ProjectArgs::default(), "sa:acme/web/ci", "acme").unwrap(), acme());
        assert_eq!(owner(&ProjectArgs::default(), "sa:acme/web/ci", "").unwrap(), acme());
    }

    #[test]
    fn a_missing_org_or_project_is_asked_for_by_flag() {
        let error = owner(&ProjectArgs::default(), "user:alice", "acme").unwrap_err().to_string();
        assert!(error.contains("--project is required") && error.contains("user:alice"), "{error}");
        let error = owner(&ProjectArgs::default(), "user:admin", "").unwrap_err().to_string();
        assert!(error.contains("--org is required") && error.contains("user:admin"), "{error}");
        let args = ProjectArgs { org: Some("acme".into()), project: Some("web".into()) };
        assert_eq!(owner(&args, "user:admin", "").unwrap(), acme());
    }

    #[test]
    fn a_zone_reads_as_one_row() {
        let zone = json!({
            "metadata": {"name": "example.com.", "created_ms": 86_400_123},
            "spec": {"name": "example.com.", "ttl": 3600, "nameservers": ["ns1.example.com."]},
            "serial": 7,
        });
        assert_eq!(
            zone_row(&zone),
            json!({"name": "example.com.", "serial": 7, "ttl": 3600, "nameservers": ["ns1.example.com."], "created_at": 86_400})
        );
    }
}
