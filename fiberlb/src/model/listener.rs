//! A listener: a port of its load balancer's address, the protocol spoken there, the pool that
//! gets its traffic unless a rule says otherwise, and (HTTPS) the certificates by SNI.

use photon_resource::{FieldError, Kind, Sealer, REDACTED};
use serde::{Deserialize, Serialize};

use super::check_pool_ref;
use photon_resource::check_range;

pub struct Listener;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Tcp,
    Udp,
    /// TLS passed through to the backends untouched, routed by the client's SNI.
    TlsPassthrough,
    Http,
    /// HTTP over TLS terminated here.
    Https,
}

impl Protocol {
    pub fn is_l7(self) -> bool {
        matches!(self, Self::Http | Self::Https)
    }
}

/// A certificate and its key (PEM) served for the host names it lists (SNI).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Host names (`*.example.com` allowed) this certificate is chosen for; the first
    /// certificate also serves clients that send no SNI.
    pub hosts: Vec<String>,
    pub certificate_pem: String,
    pub private_key_pem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Connecting to a backend.
    #[serde(default = "connect")]
    pub connect_ms: u64,
    /// A connection (or UDP flow) with no traffic for this long is closed.
    #[serde(default = "idle")]
    pub idle_ms: u64,
    /// HTTP: a request's headers must arrive, and its response start, within this.
    #[serde(default = "request")]
    pub request_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect_ms: connect(), idle_ms: idle(), request_ms: request() }
    }
}

fn connect() -> u64 {
    5_000
}
fn idle() -> u64 {
    60_000
}
fn request() -> u64 {
    30_000
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerSpec {
    pub protocol: Protocol,
    pub port: u16,
    /// The pool (of the same load balancer) traffic goes to when no rule matches.
    #[serde(default)]
    pub default_pool: Option<String>,
    #[serde(default)]
    pub certificates: Vec<Certificate>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// HTTP: the largest request header section (431 beyond) and body (413 beyond).
    #[serde(default = "header_bytes")]
    pub max_header_bytes: u32,
    #[serde(default = "body_bytes")]
    pub max_body_bytes: u64,
}

fn header_bytes() -> u32 {
    64 << 10
}
fn body_bytes() -> u64 {
    64 << 20
}

impl Kind for Listener {
    type Spec = ListenerSpec;
    const NAME: &'static str = "listener";
    const PATH: &'static [&'static str] = &["loadbalancers", "listeners"];

    fn validate(spec: &ListenerSpec) -> Result<(), FieldError> {
        check_range("spec.port", spec.port, 1..=65535)?;
        if let Some(pool) = &spec.default_pool {
            check_pool_ref("spec.default_pool", pool)?;
        }
        match (spec.protocol, spec.certificates.is_empty()) {
            (Protocol::Https, true) => return Err(FieldError::new("spec.certificates", "an https listener needs a certificate")),
            (Protocol::Https, false) => {}
            (_, false) => return Err(FieldError::new("spec.certificates", "only https listeners terminate TLS")),
            (_, true) => {}
        }
        for (i, cert) in spec.certificates.iter().enumerate() {
            if cert.hosts.is_empty() {
                return Err(FieldError::new(format!("spec.certificates[{i}].hosts"), "at least one host name"));
            }
            for (j, host) in cert.hosts.iter().enumerate() {
                check_host(&format!("spec.certificates[{i}].hosts[{j}]"), host, true)?;
            }
            // A key sent back redacted keeps the stored one (checked when sealing); only the
            // certificate can be checked here then.
            let key = if cert.private_key_pem == REDACTED { None } else { Some(cert.private_key_pem.as_str()) };
            let checked = match key {
                Some(key) => photon_tls::certified_key(&cert.certificate_pem, key).map(|_| ()),
                None => photon_tls::load_certs_pem(&cert.certificate_pem).map(|_| ()),
            };
            if let Err(e) = checked {
                let part = if e.starts_with("certificate") { "certificate_pem" } else { "private_key_pem" };
                return Err(FieldError::new(format!("spec.certificates[{i}].{part}"), e));
            }
        }
        check_range("spec.timeouts.connect_ms", spec.timeouts.connect_ms, 1..=600_000)?;
        check_range("spec.timeouts.idle_ms", spec.timeouts.idle_ms, 1..=86_400_000)?;
        check_range("spec.timeouts.request_ms", spec.timeouts.request_ms, 1..=3_600_000)?;
        check_range("spec.max_header_bytes", spec.max_header_bytes, 1024..=1 << 20)?;
        check_range("spec.max_body_bytes", spec.max_body_bytes, 0..=1 << 40)?;
        Ok(())
    }

    /// Private keys are stored sealed under the master key (`SEALED` then the sealed text); a
    /// key sent back as `REDACTED` keeps the one stored for the same certificate.
    fn seal(spec: &mut ListenerSpec, current: Option<&ListenerSpec>, sealer: &dyn Sealer) -> Result<(), FieldError> {
        for (i, cert) in spec.certificates.iter_mut().enumerate() {
            let field = format!("spec.certificates[{i}].private_key_pem");
            if cert.private_key_pem == REDACTED {
                let kept = current
                    .into_iter()
                    .flat_map(|c| c.certificates.iter())
                    .find(|c| c.certificate_pem == cert.certificate_pem)
                    .map(|c| c.private_key_pem.clone());
                match kept {
                    Some(sealed) => cert.private_key_pem = sealed,
                    None => return Err(FieldError::new(field, "no key is stored for this certificate: send the key itself")),
                }
            } else {
                let sealed = sealer.seal(cert.private_key_pem.as_bytes()).map_err(|e| FieldError::new(&field, e))?;
                cert.private_key_pem = format!("{SEALED}{sealed}");
            }
        }
        Ok(())
    }

    /// One port per transport on a load balancer's address: `tcp/80` (TCP, TLS, HTTP, HTTPS
    /// all take a TCP port) or `udp/53`.
    fn unique_in_parent(spec: &ListenerSpec) -> Vec<String> {
        let transport = if spec.protocol == Protocol::Udp { "udp" } else { "tcp" };
        vec![format!("{transport}-{}", spec.port)]
    }

    fn redact(spec: &mut ListenerSpec) {
        for cert in &mut spec.certificates {
            cert.private_key_pem = REDACTED.to_string();
        }
    }
}

/// How a stored private key begins: the rest is `photon_tls::seal` text.
pub const SEALED: &str = "sealed:";

/// Whether `host` (lower case) is what `pattern` names: the same name, or for `*.parent` a
/// name one label below `parent` (as certificates' wildcards match).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host.split_once('.').is_some_and(|(_, rest)| rest == parent),
        None => host == pattern,
    }
}

/// A host name (lower case, labels of letters, digits and hyphens), `*.` first if `wildcard`.
pub fn check_host(field: &str, host: &str, wildcard: bool) -> Result<(), FieldError> {
    let name = if wildcard { host.strip_prefix("*.").unwrap_or(host) } else { host };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("{host:?} is not a host name (lower case)")))
    }
}
