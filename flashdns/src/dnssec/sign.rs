//! Signing a built zone: which RRsets are authoritative (everything but NS at a zone cut and
//! data below a cut), an RRSIG for each by each key, and the NSEC chain over the authoritative
//! names. Signatures are valid from an hour ago (clock skew) for 14 days and reused from the
//! cache while the RRset is unchanged and more than 7 days remain, so a change re-signs only
//! what it changed and a zone is re-signed in full once a week.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use hickory_proto::dnssec::rdata::{DNSSECRData, SigInput, NSEC, RRSIG};
use hickory_proto::dnssec::TBS;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};

use super::keys::ZoneKey;
use crate::dns::lookup::labels;
use crate::dns::signed::Signatures;
use crate::dns::Zone;

const VALIDITY_SECS: u32 = 14 * 86_400;
const REFRESH_BELOW_SECS: u32 = 7 * 86_400;
const SKEW_SECS: u32 = 3_600;

/// Signatures kept between rebuilds of one zone: (owner, type, key tag) → (RRset digest,
/// expiration, RRSIG).
#[derive(Default)]
pub struct SignatureCache {
    entries: HashMap<(Name, RecordType, u16), (u64, u32, Record)>,
}

/// Signs `zone` with `keys` at time `now` (seconds since the epoch).
pub fn sign_zone(zone: &Zone, keys: &[ZoneKey], cache: &mut SignatureCache, now: u32) -> Result<Signatures, String> {
    let origin = zone.origin().clone();
    let cuts: Vec<&Name> = zone
        .nodes()
        .filter(|(name, node)| **name != origin && node.get(RecordType::NS).is_some())
        .map(|(name, _)| name)
        .collect();
    let below_cut = |name: &Name| cuts.iter().any(|cut| *cut != name && cut.zone_of(name));
    let mut owners: Vec<(&Name, Vec<RecordType>)> = Vec::new();
    let mut rrsigs: HashMap<(Name, RecordType), Vec<Record>> = HashMap::new();
    let mut fresh = SignatureCache::default();
    for (name, node) in zone.nodes() {
        if node.is_empty() || below_cut(name) {
            continue;
        }
        let at_cut = *name != origin && node.get(RecordType::NS).is_some();
        let mut types = Vec::new();
        for set in node.rrsets() {
            let Some(first) = set.first() else { continue };
            let rtype = first.record_type();
            types.push(rtype);
            // At a cut only the DS is the parent's; the NS and glue belong to the child.
            if at_cut && rtype != RecordType::DS {
                continue;
            }
            let sigs = sign_rrset(&origin, name, set, keys, cache, &mut fresh, now)?;
            rrsigs.insert((name.clone(), rtype), sigs);
        }
        owners.push((name, types));
    }
    owners.sort_by(|a, b| a.0.cmp(b.0));
    let ttl = zone.negative_ttl();
    let mut nsec = BTreeMap::new();
    for (i, (name, types)) in owners.iter().enumerate() {
        let next = owners.get(i + 1).map(|(n, _)| (*n).clone()).unwrap_or_else(|| origin.clone());
        let data = NSEC::new_cover_self(next, types.iter().copied());
        let record = Record::from_rdata((*name).clone(), ttl, RData::DNSSEC(DNSSECRData::NSEC(data)));
        let sigs = sign_rrset(&origin, name, std::slice::from_ref(&record), keys, cache, &mut fresh, now)?;
        rrsigs.insert(((*name).clone(), RecordType::NSEC), sigs);
        nsec.insert((*name).clone(), record);
    }
    *cache = fresh;
    Ok(Signatures::new(rrsigs, nsec))
}

/// The RRSIGs of one RRset, from the cache when still good.
fn sign_rrset(
    origin: &Name,
    owner: &Name,
    set: &[Record],
    keys: &[ZoneKey],
    cache: &SignatureCache,
    fresh: &mut SignatureCache,
    now: u32,
) -> Result<Vec<Record>, String> {
    let Some(first) = set.first() else { return Ok(Vec::new()) };
    let rtype = first.record_type();
    let digest = digest(set);
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let slot = (owner.clone(), rtype, key.tag);
        if let Some((seen, expiration, record)) = cache.entries.get(&slot) {
            if *seen == digest && expiration.wrapping_sub(now) > REFRESH_BELOW_SECS && *expiration > now {
                out.push(record.clone());
                fresh.entries.insert(slot, (*seen, *expiration, record.clone()));
                continue;
            }
        }
        let expiration = now + VALIDITY_SECS;
        let input = SigInput {
            type_covered: rtype,
            algorithm: key.algorithm,
            // RFC 4034 §3.1.3: a wildcard's label count leaves out the `*`.
            num_labels: labels(owner).saturating_sub(usize::from(owner.is_wildcard())) as u8,
            original_ttl: first.ttl,
            sig_expiration: SerialNumber::new(expiration),
            sig_inception: SerialNumber::new(now.saturating_sub(SKEW_SECS)),
            key_tag: key.tag,
            signer_name: origin.clone(),
        };
        let tbs = TBS::from_input(owner, DNSClass::IN, &input, set.iter())
            .map_err(|e| format!("cannot sign {owner} {rtype}: {e}"))?;
        let signature = key.signer.sign(&tbs).map_err(|e| format!("cannot sign {owner} {rtype}: {e}"))?;
        let rrsig = RRSIG::from_sig(input, signature);
        let record = Record::from_rdata(owner.clone(), first.ttl, RData::DNSSEC(DNSSECRData::RRSIG(rrsig)));
        fresh.entries.insert(slot, (digest, expiration, record.clone()));
        out.push(record);
    }
    Ok(out)
}

/// What a signature covers: the RRset's TTL and data.
fn digest(set: &[Record]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for record in set {
        record.ttl.hash(&mut hasher);
        record.data.hash(&mut hasher);
    }
    hasher.finish()
}
