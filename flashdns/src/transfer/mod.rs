//! Zone transfers to secondaries and NOTIFY: AXFR (RFC 5936) and IXFR (RFC 1995) over TCP (and
//! DNS over TLS), TSIG-authenticated (RFC 8945, `tsig`); NOTIFY (RFC 1996, `notify`) sent to a
//! zone's secondaries when this node's API changes it. What a transfer sends is decided in
//! `xfr` without I/O; the journal IXFR answers from is `journal`.
//!
//! Decisions:
//! - A zone's `secondaries` (its spec) name each secondary's `ip:port` (where NOTIFY goes) and
//!   TSIG key. A transfer is served only to a request from a secondary's IP, signed with that
//!   secondary's key; an unsigned one is REFUSED, one from elsewhere or signed with another
//!   known key is REFUSED (signed), a bad signature is NOTAUTH with BADKEY/BADSIG (unsigned) or
//!   BADTIME (signed), a zone not served is NOTAUTH. Keys are the operator's (`[transfer]
//!   keys`), so a tenant can only pick among them.
//! - Any TSIG-signed query gets a signed answer (a secondary's SOA check is signed, and Knot
//!   refuses an unsigned answer to it); a signed UDP answer may exceed the size limit by the
//!   TSIG's bytes.
//! - The journal lives in chainfire under `journal/<zone>/<generation>/<serial>` (the records'
//!   generation, so an import starts a new journal in the transaction that switches the
//!   generation, and the old one is deleted with the old records: chainfire refuses a
//!   transaction that puts a key under a prefix it also deletes). Only zones with secondaries
//!   keep one. Changes between imports bump the serial by one, so the entry `journal_max`
//!   changes back is deleted in the same transaction; lowering `journal_max` leaves older
//!   entries until the next import.
//! - An IXFR is answered with one condensed difference (RFC 1995 §5); the SOA's other fields
//!   do not change between imports, so the old SOA is the current one with the old serial.
//!   A DNSSEC-signed zone goes whole, its RRSIGs and NSECs included: the journal holds no
//!   signatures.
//! - Transfers read one snapshot the mirror publishes per zone (served zone, secondaries,
//!   journal), so a difference always ends at the serial the zone is served at. PTR records a
//!   reverse zone synthesizes are not records of the zone and are not transferred.
//! - NOTIFY waits (up to 10 s) until this node serves the new serial, since the secondary's
//!   first step is to ask us for the SOA; it is retried five times over about 30 s.

pub mod journal;
pub mod metrics;
pub mod notify;
pub mod tsig;
pub mod xfr;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

use self::journal::Journal;
use self::metrics::TransferMetrics;
use self::tsig::{Check, KeyRing, Signing};
use crate::dns::Zone;

/// A secondary of a zone, as transfers and NOTIFY use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secondary {
    /// Where NOTIFY goes; its IP may transfer the zone.
    pub address: SocketAddr,
    /// The TSIG key it signs with (lowercase, absolute).
    pub key: Name,
}

/// What a transfer of one zone reads: the zone as served, its secondaries and its journal, all
/// from one state of the mirror.
#[derive(Debug)]
pub struct ZoneTransfer {
    pub zone: Arc<Zone>,
    pub secondaries: Vec<Secondary>,
    pub journal: Journal,
}

impl ZoneTransfer {
    /// From the zone's spec; secondaries that do not parse (the spec was validated when it was
    /// written) are left out and logged.
    pub fn new(zone: Arc<Zone>, secondaries: &[crate::model::Secondary], journal: Journal) -> Self {
        let secondaries = secondaries
            .iter()
            .filter_map(|s| match (s.address.parse(), tsig::key_name(&s.key)) {
                (Ok(address), Ok(key)) => Some(Secondary { address, key }),
                _ => {
                    tracing::error!(zone = %zone.origin(), address = %s.address, key = %s.key, "stored secondary is invalid; ignoring it");
                    None
                }
            })
            .collect();
        Self { zone, secondaries, journal }
    }

    /// Whether a request from `peer` signed with `key` comes from one of the secondaries.
    pub fn allows(&self, peer: IpAddr, key: &Name) -> bool {
        self.secondaries.iter().any(|s| s.address.ip().to_canonical() == peer.to_canonical() && s.key == *key)
    }
}

/// Every served zone's snapshot, by origin; replaced whole on each change.
type Snapshots = Arc<HashMap<Name, Arc<ZoneTransfer>>>;

/// The shared state of transfers: the keys, each zone's snapshot, the counters.
#[derive(Clone, Default)]
pub struct Transfers {
    keys: Arc<KeyRing>,
    zones: Arc<RwLock<Snapshots>>,
    metrics: Arc<TransferMetrics>,
}

impl Transfers {
    pub fn new(keys: KeyRing) -> Self {
        Self { keys: Arc::new(keys), ..Self::default() }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    pub fn metrics(&self) -> &TransferMetrics {
        &self.metrics
    }

    /// Replaces every zone's snapshot.
    pub fn publish(&self, zones: impl IntoIterator<Item = Arc<ZoneTransfer>>) {
        let zones: Snapshots = Arc::new(zones.into_iter().map(|z| (z.zone.origin().clone(), z)).collect());
        match self.zones.write() {
            Ok(mut guard) => *guard = zones,
            Err(poisoned) => *poisoned.into_inner() = zones,
        }
    }

    /// The snapshot of the zone `origin` (lowercase), if it is served.
    pub fn zone(&self, origin: &Name) -> Option<Arc<ZoneTransfer>> {
        let zones = match self.zones.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        zones.get(origin).cloned()
    }

    /// `response`, the answer to the TSIG-signed `query`, signed; or the TSIG error that
    /// replaces it if the signature does not verify.
    pub fn sign_answer(&self, query: &[u8], response: Vec<u8>) -> Vec<u8> {
        let now = tsig::now();
        let (Ok(request), Ok(mut message)) = (Message::from_vec(query), Message::from_vec(&response)) else {
            return response;
        };
        let signed = match self.keys.check(query, &request, now) {
            Check::Unsigned => return response,
            Check::Signed(mut signing) => signing.sign(&mut message, now),
            Check::Failed(failure) => failure.respond(&mut message, now),
        };
        match signed.and_then(|()| message.to_vec()) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot sign a response; sending it unsigned");
                response
            }
        }
    }

    /// The messages answering an AXFR or IXFR `query` from `peer` (empty: close the
    /// connection).
    pub fn transfer(&self, query: &[u8], peer: SocketAddr) -> Vec<Vec<u8>> {
        self.transfer_at(query, peer, tsig::now())
    }

    fn transfer_at(&self, query: &[u8], peer: SocketAddr, now: u64) -> Vec<Vec<u8>> {
        // `respond` decoded it and checked there is exactly one question.
        let Ok(request) = Message::from_vec(query) else { return Vec::new() };
        let Some(question) = request.queries.first() else { return Vec::new() };
        let mut signing = match self.keys.check(query, &request, now) {
            Check::Unsigned => None,
            Check::Signed(signing) => Some(signing),
            Check::Failed(failure) => {
                self.metrics.refused(failure.reason());
                let key = request.signature.as_ref().map(|s| s.name.to_ascii()).unwrap_or_default();
                tracing::info!(%peer, %key, error = ?failure.error, zone = %question.name, "zone transfer refused: TSIG");
                let mut response = error(&request, ResponseCode::NotAuth);
                return encode(failure.respond(&mut response, now).map(|()| vec![response]));
            }
        };
        let kind = if question.query_type == RecordType::AXFR { "axfr" } else { "ixfr" };
        let origin = question.name.to_lowercase();
        let zone = if question.query_class == DNSClass::IN { self.zone(&origin) } else { None };
        let decision = match zone {
            None => Err((ResponseCode::NotAuth, "not_served")),
            Some(zone) => match &signing {
                None => Err((ResponseCode::Refused, "unsigned")),
                Some(signing) if !zone.allows(peer.ip(), signing.key_name()) => {
                    Err((ResponseCode::Refused, "not_allowed"))
                }
                Some(_) => Ok(zone),
            },
        };
        let zone = match decision {
            Ok(zone) => zone,
            Err((rcode, reason)) => {
                self.metrics.refused(reason);
                let key = signing.as_ref().map(|s| s.key_name().to_ascii()).unwrap_or_default();
                tracing::info!(%peer, %key, zone = %origin, kind, reason, "zone transfer refused");
                return signed(vec![error(&request, rcode)], signing.as_mut(), now);
            }
        };
        let (records, style) = match question.query_type {
            RecordType::AXFR => (xfr::axfr(&zone.zone), xfr::Style::Full),
            _ => match client_serial(&request, &origin) {
                Some(client) => xfr::ixfr(&zone.zone, &zone.journal, client),
                // RFC 1995 §3: the client's SOA is in the authority section.
                None => return signed(vec![error(&request, ResponseCode::FormErr)], signing.as_mut(), now),
            },
        };
        self.metrics.transfer(&origin.to_ascii(), kind, style.label());
        tracing::info!(
            zone = %origin, %peer, kind, answer = style.label(), serial = zone.zone.serial(), records = records.len(),
            "zone transfer"
        );
        signed(xfr::messages(&request, records), signing.as_mut(), now)
    }
}

/// The serial of the client's SOA in an IXFR request.
fn client_serial(request: &Message, origin: &Name) -> Option<u32> {
    request.authorities.iter().find_map(|record| match &record.data {
        RData::SOA(soa) if record.name.to_lowercase() == *origin => Some(soa.serial),
        _ => None,
    })
}

/// An error answer to `request`: its question and `rcode`.
fn error(request: &Message, rcode: ResponseCode) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.queries = request.queries.clone();
    response.metadata.response_code = rcode;
    response
}

/// `messages` signed in order if the request was, then encoded.
fn signed(mut messages: Vec<Message>, signing: Option<&mut Signing>, now: u64) -> Vec<Vec<u8>> {
    let result = match signing {
        Some(signing) => messages.iter_mut().try_for_each(|message| signing.sign(message, now)),
        None => Ok(()),
    };
    encode(result.map(|()| messages))
}

fn encode(messages: Result<Vec<Message>, hickory_proto::ProtoError>) -> Vec<Vec<u8>> {
    match messages.and_then(|messages| messages.iter().map(Message::to_vec).collect()) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a transfer's messages; closing the connection");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
