//! Signing a zone through the API: turning it on with a first key, rolling to a new key (both
//! sign until the old one is removed, so a validator holding either the old DS or the new one
//! validates throughout: RFC 6781's double-signature rollover), removing a key, turning
//! signing off; and what the API shows of a zone's keys (each DNSKEY with its DS for the
//! parent).

use photon_resource::{FieldError, Owner, ResourceError};
use serde::{Deserialize, Serialize};

use super::keys::{algorithm, Keyring, StoredKey};
use crate::model::Zone;
use crate::store::Zones;

/// At most this many keys sign a zone at once (the old and the new during a rollover).
const MAX_KEYS: usize = 2;

/// `POST .../dnssec` and `.../dnssec/rollover`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// `ECDSAP256SHA256` (default) or `ED25519`.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
}

fn default_algorithm() -> String {
    "ECDSAP256SHA256".into()
}

/// What the API shows of one key.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub tag: u16,
    pub algorithm: String,
    pub created_ms: u64,
    /// The DNSKEY record, master-file text.
    pub dnskey: String,
    /// The DS record the parent zone publishes for it (SHA-256), master-file text.
    pub ds: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DnssecView {
    pub zone: String,
    pub signed: bool,
    pub serial: u32,
    pub keys: Vec<KeyView>,
}

pub fn view(keyring: &Keyring, zone: &Zone) -> Result<DnssecView, ResourceError> {
    let origin = zone.spec.origin();
    let mut keys = Vec::new();
    for stored in &zone.dnssec {
        let key = keyring.open(stored).map_err(|e| ResourceError::Backend(format!("key {}: {e}", stored.tag)))?;
        let ds = key.ds(&origin).map_err(|e| ResourceError::Backend(format!("key {}: {e}", stored.tag)))?;
        keys.push(KeyView {
            tag: stored.tag,
            algorithm: stored.algorithm.clone(),
            created_ms: stored.created_ms,
            dnskey: format!("{} {} IN DNSKEY {}", origin, zone.spec.ttl, crate::zonefile::rdata_text(&dnskey_rdata(&key))),
            ds: format!("{origin} {} IN DS {}", zone.spec.ttl, ds_text(&ds)),
        });
    }
    Ok(DnssecView { zone: zone.spec.name.clone(), signed: !zone.dnssec.is_empty(), serial: zone.serial, keys })
}

fn dnskey_rdata(key: &super::keys::ZoneKey) -> hickory_proto::rr::RData {
    hickory_proto::rr::RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::DNSKEY(key.dnskey.clone()))
}

fn ds_text(ds: &hickory_proto::dnssec::rdata::DS) -> String {
    let digest: String = ds.digest().iter().map(|b| format!("{b:02X}")).collect();
    format!("{} {} {} {digest}", ds.key_tag(), u8::from(ds.algorithm()), u8::from(ds.digest_type()))
}

/// Signs an unsigned zone with a new key.
pub async fn sign(zones: &Zones, keyring: &Keyring, owner: &Owner, zone: &str, request: SignRequest) -> Result<Zone, ResourceError> {
    let current = zones.get(owner, zone).await?;
    if !current.value.dnssec.is_empty() {
        return Err(ResourceError::AlreadyExists { kind: "signing key for", name: current.value.spec.name });
    }
    let key = new_key(keyring, &request)?;
    let zone = zones.set_keys(owner, zone, vec![key]).await?;
    tracing::info!(zone = %zone.spec.name, "zone signed");
    Ok(zone)
}

/// Adds a new key beside the current one: both sign until the old one is removed.
pub async fn rollover(zones: &Zones, keyring: &Keyring, owner: &Owner, zone: &str, request: SignRequest) -> Result<Zone, ResourceError> {
    let current = zones.get(owner, zone).await?;
    if current.value.dnssec.is_empty() {
        return Err(FieldError::new("zone", format!("{} is not signed: sign it first", current.value.spec.name)).into());
    }
    if current.value.dnssec.len() >= MAX_KEYS {
        return Err(FieldError::new(
            "zone",
            format!("{} is already rolling over: remove the old key once the parent's DS names the new one", current.value.spec.name),
        )
        .into());
    }
    let mut keys = current.value.dnssec.clone();
    let key = new_key(keyring, &request)?;
    if keys.iter().any(|k| k.tag == key.tag) {
        return Err(ResourceError::Backend("the new key's tag collides with the current one's; try again".into()));
    }
    keys.push(key);
    zones.set_keys(owner, zone, keys).await
}

/// Removes the key `tag` (the old one, after a rollover); the last key is removed by unsigning.
pub async fn remove_key(zones: &Zones, owner: &Owner, zone: &str, tag: &str) -> Result<Zone, ResourceError> {
    let current = zones.get(owner, zone).await?;
    let tag: u16 = tag.parse().map_err(|_| FieldError::new("tag", format!("{tag:?} is not a key tag (0-65535)")))?;
    if !current.value.dnssec.iter().any(|k| k.tag == tag) {
        return Err(ResourceError::NotFound { kind: "signing key", name: tag.to_string() });
    }
    if current.value.dnssec.len() == 1 {
        return Err(FieldError::new("tag", "this is the zone's only key: unsign the zone instead (DELETE .../dnssec)").into());
    }
    let keys = current.value.dnssec.iter().filter(|k| k.tag != tag).cloned().collect();
    zones.set_keys(owner, zone, keys).await
}

/// Stops signing the zone.
pub async fn unsign(zones: &Zones, owner: &Owner, zone: &str) -> Result<Zone, ResourceError> {
    zones.set_keys(owner, zone, Vec::new()).await
}

fn new_key(keyring: &Keyring, request: &SignRequest) -> Result<StoredKey, ResourceError> {
    let algorithm = algorithm(&request.algorithm).map_err(|e| FieldError::new("algorithm", e))?;
    keyring.generate(algorithm).map_err(ResourceError::Backend)
}
