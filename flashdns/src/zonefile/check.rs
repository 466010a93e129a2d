//! The rules a whole zone must follow, checked once every record is read: one SOA, at the apex;
//! nothing outside the zone; a CNAME alone at its name (RFC 1034 §3.6.2, RFC 2181 §10.1); one
//! DNAME per name, no NS beside it below the apex, nothing under it (RFC 6672 §2.3, §2.4).
//! These are knotd's mandatory semantic checks too, so a zone accepted here also loads there.

use std::collections::{HashMap, HashSet};

use hickory_proto::rr::{Name, Record, RecordType};

use super::{type_name, ZoneFileError};

/// What has been seen at one owner name, with the line of each first occurrence.
#[derive(Default)]
struct AtName {
    cname: Option<usize>,
    dname: Option<usize>,
    ns: Option<usize>,
    /// The first record that may not share its name with a CNAME.
    other: Option<(RecordType, usize)>,
}

/// Checks `records` (each with its line) as the zone at `apex`; the first problem is returned.
pub(super) fn zone(apex: &Name, records: &[(Record, usize)]) -> Result<(), ZoneFileError> {
    let mut soa_line = None;
    let mut names: HashMap<&Name, AtName> = HashMap::new();
    for (record, line) in records {
        let line = *line;
        let fail = |message: String| Err(ZoneFileError::Syntax { line, message });
        let name = &record.name;
        let rtype = record.record_type();
        if !apex.zone_of(name) {
            return fail(format!("record {name} is outside the zone {apex}"));
        }
        if rtype == RecordType::SOA {
            if name != apex {
                return fail(format!("the SOA record for {name} is not at the zone apex {apex}"));
            }
            if let Some(first) = soa_line {
                return fail(format!("a second SOA record (the first is on line {first})"));
            }
            soa_line = Some(line);
        }

        let at = names.entry(name).or_default();
        match rtype {
            RecordType::CNAME => {
                if let Some(first) = at.cname {
                    return fail(format!("a second CNAME at {name} (the first is on line {first})"));
                }
                if let Some((other, other_line)) = at.other {
                    return fail(format!(
                        "{name} has a CNAME and other data ({} on line {other_line}): \
                         a CNAME must be the only record at its name",
                        type_name(other)
                    ));
                }
                at.cname = Some(line);
            }
            // RFC 2181 §10.1 as updated by DNSSEC: a CNAME's own signature and NSEC sit beside it.
            RecordType::RRSIG | RecordType::NSEC => {}
            _ => {
                if let Some(cname_line) = at.cname {
                    return fail(format!(
                        "{name} has a CNAME (line {cname_line}) and other data ({}): \
                         a CNAME must be the only record at its name",
                        type_name(rtype)
                    ));
                }
                at.other.get_or_insert((rtype, line));
            }
        }
        if rtype == RecordType::DNAME {
            if let Some(first) = at.dname {
                return fail(format!("a second DNAME at {name} (the first is on line {first})"));
            }
            at.dname = Some(line);
        }
        if rtype == RecordType::NS {
            at.ns.get_or_insert(line);
        }
        if name != apex {
            if let (Some(_), Some(_)) = (at.dname, at.ns) {
                return fail(format!("{name} has both a DNAME and an NS record: a delegation cannot redirect"));
            }
        }
    }
    if soa_line.is_none() {
        return Err(ZoneFileError::Zone(format!("no SOA record at the zone apex {apex}")));
    }
    below_dname(apex, records, &names)
}

/// RFC 6672 §2.4: a DNAME replaces its whole subtree, so no record may sit beneath it.
fn below_dname(apex: &Name, records: &[(Record, usize)], names: &HashMap<&Name, AtName>) -> Result<(), ZoneFileError> {
    let dnames: HashSet<&Name> = names.iter().filter(|(_, at)| at.dname.is_some()).map(|(name, _)| *name).collect();
    if dnames.is_empty() {
        return Ok(());
    }
    let apex_labels = apex.iter().count();
    for (record, line) in records {
        let labels = record.name.iter().count();
        let mut above = (apex_labels..labels).map(|kept| record.name.trim_to(kept));
        if let Some(dname) = above.find(|ancestor| dnames.contains(ancestor)) {
            return Err(ZoneFileError::Syntax {
                line: *line,
                message: format!("record {} is below the DNAME at {dname}, which hides it", record.name),
            });
        }
    }
    Ok(())
}
