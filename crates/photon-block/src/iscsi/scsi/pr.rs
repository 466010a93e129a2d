//! PERSISTENT RESERVE IN and OUT on the wire (SPC-4 §6.16, §6.17): the parameter list decoded
//! and checked, the IN service actions' data encoded. The rules live in `reservations`.

use super::reservations::{self, Request, Reservations, State};
use super::sense::Sense;
use super::{truncated, Nexus, Outcome};

// PERSISTENT RESERVE IN service actions.
const READ_KEYS: u8 = 0;
const READ_RESERVATION: u8 = 1;
const REPORT_CAPABILITIES: u8 = 2;
const READ_FULL_STATUS: u8 = 3;

/// The basic PERSISTENT RESERVE OUT parameter list is 24 bytes.
const PARAMETER_LIST: u32 = 24;
/// iSCSI's protocol identifier in TransportIDs (SPC-4 §7.6.1).
const PROTOCOL_ISCSI: u8 = 5;

pub fn read(reservations: &Reservations, action: u8, alloc: u32) -> Outcome {
    let state = reservations.lock();
    let data = match action {
        READ_KEYS => read_keys(&state),
        READ_RESERVATION => read_reservation(&state),
        REPORT_CAPABILITIES => report_capabilities(),
        READ_FULL_STATUS => read_full_status(&state),
        _ => return Outcome::check(Sense::cdb_field(1, Some(4))),
    };
    Outcome::good(truncated(data, alloc))
}

fn read_keys(state: &State) -> Vec<u8> {
    let mut out = state.generation.to_be_bytes().to_vec();
    out.extend_from_slice(&((state.registrations.len() * 8) as u32).to_be_bytes());
    for r in &state.registrations {
        out.extend_from_slice(&r.key.to_be_bytes());
    }
    out
}

/// The key shown for the reservation: the holder's, or zero for all-registrants types.
fn reservation_key(state: &State) -> u64 {
    match &state.reservation {
        Some(r) if r.kind >= reservations::WRITE_EXCLUSIVE_ALL_REGISTRANTS => 0,
        Some(r) => state.registrations.iter().find(|g| g.port == r.holder).map_or(0, |g| g.key),
        None => 0,
    }
}

fn read_reservation(state: &State) -> Vec<u8> {
    let mut out = state.generation.to_be_bytes().to_vec();
    match &state.reservation {
        None => out.extend_from_slice(&0u32.to_be_bytes()),
        Some(r) => {
            out.extend_from_slice(&16u32.to_be_bytes());
            out.extend_from_slice(&reservation_key(state).to_be_bytes());
            out.extend_from_slice(&[0; 5]);
            // Scope (logical unit, 0) and type.
            out.push(r.kind & 0x0f);
            out.extend_from_slice(&[0; 2]);
        }
    }
    out
}

fn report_capabilities() -> Vec<u8> {
    // CRH: RESERVE(6)/RELEASE(6) follow SPC-4's compatible handling. ATP_C: ALL_TG_PT is
    // accepted (there is one target port). TMV with ALLOW COMMANDS 0; no PTPL, no SIP.
    let byte2 = 0x10 | 0x04;
    let byte3 = 0x80;
    // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX; then EX_AC_AR.
    let mask = [0x80 | 0x40 | 0x20 | 0x08 | 0x02, 0x01];
    vec![0, 8, byte2, byte3, mask[0], mask[1], 0, 0]
}

fn read_full_status(state: &State) -> Vec<u8> {
    let mut descriptors = Vec::new();
    for r in &state.registrations {
        let holder = state.holds(&r.port);
        let id = transport_id(&r.port);
        descriptors.extend_from_slice(&r.key.to_be_bytes());
        descriptors.extend_from_slice(&[0; 4]);
        descriptors.push(if holder { 0x01 } else { 0 });
        descriptors.push(if holder { state.reservation.as_ref().map_or(0, |x| x.kind & 0x0f) } else { 0 });
        descriptors.extend_from_slice(&[0; 4]);
        // Relative target port identifier 1: the only port.
        descriptors.extend_from_slice(&1u16.to_be_bytes());
        descriptors.extend_from_slice(&(id.len() as u32).to_be_bytes());
        descriptors.extend_from_slice(&id);
    }
    let mut out = state.generation.to_be_bytes().to_vec();
    out.extend_from_slice(&(descriptors.len() as u32).to_be_bytes());
    out.extend_from_slice(&descriptors);
    out
}

/// An iSCSI initiator port TransportID (format 01: name, ",i,0x", ISID), NUL-terminated and
/// padded to a multiple of four.
fn transport_id(port: &str) -> Vec<u8> {
    let mut name = port.as_bytes().to_vec();
    name.push(0);
    name.resize(name.len().div_ceil(4) * 4, 0);
    let mut out = vec![0x40 | PROTOCOL_ISCSI, 0];
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(&name);
    out
}

/// PERSISTENT RESERVE OUT: checks the CDB and parameter list, then applies it.
pub fn write(
    reservations: &Reservations,
    nexus: &Nexus,
    action: u8,
    scope: u8,
    kind: u8,
    len: u32,
    data: &[u8],
) -> Outcome {
    let request = match decode(action, scope, kind, len, data) {
        Ok(request) => request,
        Err(sense) => return Outcome::check(sense),
    };
    let verdict = reservations.lock().apply(&nexus.port, request);
    reservations::verdict(verdict)
}

fn decode(action: u8, scope: u8, kind: u8, len: u32, data: &[u8]) -> Result<Request, Sense> {
    use reservations::{CLEAR, PREEMPT, PREEMPT_AND_ABORT, REGISTER, REGISTER_AND_IGNORE, RELEASE, RESERVE};
    if !matches!(action, REGISTER | RESERVE | RELEASE | CLEAR | PREEMPT | PREEMPT_AND_ABORT | REGISTER_AND_IGNORE) {
        // REGISTER AND MOVE and REPLACE LOST RESERVATION are not offered.
        return Err(Sense::cdb_field(1, Some(4)));
    }
    let typed = matches!(action, RESERVE | RELEASE | PREEMPT | PREEMPT_AND_ABORT);
    if typed && (scope != 0 || !reservations::valid_type(kind)) {
        return Err(Sense::cdb_field(2, None));
    }
    if len != PARAMETER_LIST {
        return Err(Sense::PARAMETER_LIST_LENGTH);
    }
    if data.len() < PARAMETER_LIST as usize {
        return Err(Sense::PARAMETER_LIST_LENGTH);
    }
    let flags = data[20];
    // SPEC_I_PT (bit 3) and APTPL (bit 0) are not offered; ALL_TG_PT (bit 2) is moot.
    if flags & 0x08 != 0 {
        return Err(Sense::parameter_field(20, Some(3)));
    }
    if flags & 0x01 != 0 {
        return Err(Sense::parameter_field(20, Some(0)));
    }
    let key = u64::from_be_bytes(data[0..8].try_into().unwrap_or([0; 8]));
    let service_key = u64::from_be_bytes(data[8..16].try_into().unwrap_or([0; 8]));
    Ok(Request { action, kind, key, service_key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(key: u64, service_key: u64) -> Vec<u8> {
        let mut p = key.to_be_bytes().to_vec();
        p.extend_from_slice(&service_key.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p
    }

    #[test]
    fn register_reserve_and_read_back() {
        let rs = Reservations::default();
        let a = Nexus::new("iqn.a", [0, 1, 2, 3, 4, 5]);
        assert_eq!(write(&rs, &a, 6, 0, 0, 24, &params(0, 0xabc)).status, 0);
        assert_eq!(write(&rs, &a, 1, 0, 3, 24, &params(0xabc, 0)).status, 0);
        let keys = read(&rs, READ_KEYS, 100).data;
        assert_eq!(&keys[..], &[0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x0a, 0xbc]);
        let r = read(&rs, READ_RESERVATION, 100).data;
        assert_eq!(r.len(), 24);
        assert_eq!(&r[8..16], &0xabcu64.to_be_bytes());
        assert_eq!(r[21], 3);
        // The allocation length cuts the data, never the lengths inside it.
        assert_eq!(&read(&rs, READ_KEYS, 8).data[4..8], &[0, 0, 0, 8]);
        let full = read(&rs, READ_FULL_STATUS, 1000).data;
        assert_eq!(full[8 + 12], 1, "the holder");
        assert_eq!(&full[8 + 24..8 + 28], b"\x45\x00\x00\x18");
        assert_eq!(read(&rs, REPORT_CAPABILITIES, 100).data.len(), 8);
        assert_eq!(read(&rs, 4, 100).sense, Some(Sense::cdb_field(1, Some(4))));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let rs = Reservations::default();
        let a = Nexus::new("iqn.a", [0; 6]);
        assert_eq!(write(&rs, &a, 7, 0, 0, 24, &params(0, 1)).sense, Some(Sense::cdb_field(1, Some(4))));
        assert_eq!(write(&rs, &a, 1, 0, 2, 24, &params(0, 1)).sense, Some(Sense::cdb_field(2, None)));
        assert_eq!(write(&rs, &a, 1, 1, 1, 24, &params(0, 1)).sense, Some(Sense::cdb_field(2, None)));
        assert_eq!(write(&rs, &a, 0, 0, 0, 23, &params(0, 1)).sense, Some(Sense::PARAMETER_LIST_LENGTH));
        assert_eq!(write(&rs, &a, 0, 0, 0, 24, &params(0, 1)[..10]).sense, Some(Sense::PARAMETER_LIST_LENGTH));
        let mut aptpl = params(0, 1);
        aptpl[20] = 1;
        assert_eq!(write(&rs, &a, 0, 0, 0, 24, &aptpl).sense, Some(Sense::parameter_field(20, Some(0))));
        assert!(rs.lock().registrations.is_empty());
    }
}
