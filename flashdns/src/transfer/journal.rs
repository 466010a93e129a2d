//! The change journal IXFR answers from: one entry per change of a zone, the records it removed
//! and added as master-file lines (`<owner> <ttl> IN <TYPE> <data>`, the data as `zonefile`
//! writes it), or a reset where no difference can be told (an import). The SOA's change is
//! implied: between resets the SOA differs only in its serial, `from` → `to`.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::rr::{Name, Record, RecordType};
use serde::{Deserialize, Serialize};

use crate::model::{self, RecordSet};

/// An entry larger than this is written as a reset instead (chainfire's values stay well
/// below their 1 MiB limit).
pub const MAX_ENTRY_BYTES: usize = 512 * 1024;

/// One stored entry (`journal/<zone>/<generation>/<to>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub from: u32,
    pub to: u32,
    /// No difference is known: a client at `from` or before needs the whole zone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    #[serde(default)]
    pub removed: Vec<String>,
    #[serde(default)]
    pub added: Vec<String>,
}

impl JournalEntry {
    pub fn reset(from: u32, to: u32) -> Self {
        Self { from, to, reset: true, removed: Vec::new(), added: Vec::new() }
    }

    /// The change of one record set from `old` to `new` (either may be absent) in zone
    /// `origin`. A set that does not read back, or an entry too large to store, makes a reset.
    pub fn change(origin: &Name, from: u32, to: u32, old: Option<&RecordSet>, new: Option<&RecordSet>) -> Self {
        let lines = |set: Option<&RecordSet>| -> Option<Vec<String>> {
            let Some(set) = set else { return Some(Vec::new()) };
            let records = model::records_of(origin, set).ok()?;
            let unique: BTreeSet<String> = records.iter().map(line).collect();
            Some(unique.into_iter().collect())
        };
        let (Some(removed), Some(added)) = (lines(old), lines(new)) else {
            return Self::reset(from, to);
        };
        let entry = Self { from, to, reset: false, removed, added };
        match serde_json::to_vec(&entry) {
            Ok(bytes) if bytes.len() <= MAX_ENTRY_BYTES => entry,
            _ => Self::reset(from, to),
        }
    }
}

/// A record as one master-file line with an absolute owner, which `parse_line` reads back.
pub fn line(record: &Record) -> String {
    format!(
        "{} {} IN {} {}",
        record.name.to_ascii(),
        record.ttl,
        record.record_type(),
        crate::import::data_text(record)
    )
}

/// A line `line` wrote, as the record.
pub fn parse_line(origin: &Name, text: &str) -> Result<Record, String> {
    let (owner, rest) = split_owner(text);
    let mut fields = rest.trim_start().splitn(4, ' ');
    let (Some(ttl), Some("IN"), Some(rtype), Some(data)) = (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!("{text:?} is not <owner> <ttl> IN <type> <data>"));
    };
    let owner = model::absolute_name("owner", owner, Some(origin)).map_err(|e| e.message)?;
    let ttl: u32 = ttl.parse().map_err(|_| format!("{ttl:?} is not a TTL"))?;
    let rtype = RecordType::from_str(rtype).map_err(|_| format!("{rtype:?} is not a record type"))?;
    let data = model::parse_rdata("data", rtype, data, origin).map_err(|e| e.message)?;
    Ok(Record::from_rdata(owner, ttl, data))
}

/// The owner (up to the first space that is not escaped) and the rest.
fn split_owner(text: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ' ' => return (&text[..i], &text[i..]),
            _ => {}
        }
    }
    (text, "")
}

/// A zone's journal as the mirror holds it (one generation): entries by the serial they start
/// from.
#[derive(Debug, Default, Clone)]
pub struct Journal {
    by_from: HashMap<u32, Arc<JournalEntry>>,
}

impl Journal {
    pub fn insert(&mut self, entry: Arc<JournalEntry>) {
        self.by_from.insert(entry.from, entry);
    }

    pub fn len(&self) -> usize {
        self.by_from.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_from.is_empty()
    }

    /// The entries leading from serial `from` to `to`, oldest first; `None` if an entry is
    /// missing or a reset lies on the way (the client then gets the whole zone).
    pub fn path(&self, from: u32, to: u32) -> Option<Vec<&JournalEntry>> {
        let mut path = Vec::new();
        let mut at = from;
        while at != to {
            let entry = self.by_from.get(&at)?;
            if entry.reset || path.len() >= self.by_from.len() {
                return None;
            }
            path.push(entry.as_ref());
            at = entry.to;
        }
        Some(path)
    }
}

/// The net change of consecutive entries (RFC 1995 §5, condensation): the lines removed from
/// the first version and those added in the last, a record added and removed again in between
/// appearing in neither.
pub fn condense(entries: &[&JournalEntry]) -> (Vec<String>, Vec<String>) {
    let mut removed: BTreeSet<&str> = BTreeSet::new();
    let mut added: BTreeSet<&str> = BTreeSet::new();
    for entry in entries {
        for line in &entry.removed {
            if !added.remove(line.as_str()) {
                removed.insert(line);
            }
        }
        for line in &entry.added {
            if !removed.remove(line.as_str()) {
                added.insert(line);
            }
        }
    }
    (removed.into_iter().map(str::to_owned).collect(), added.into_iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::from_ascii("example.test.").expect("a name")
    }

    fn set(name: &str, rtype: &str, ttl: u32, data: &[&str]) -> RecordSet {
        RecordSet {
            name: name.into(),
            rtype: rtype.into(),
            ttl,
            data: data.iter().map(|d| d.to_string()).collect(),
            updated_ms: 0,
            resource_version: 0,
        }
    }

    fn entry(from: u32, to: u32, removed: &[&str], added: &[&str]) -> JournalEntry {
        JournalEntry {
            from,
            to,
            reset: false,
            removed: removed.iter().map(|l| l.to_string()).collect(),
            added: added.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn lines_read_back_as_the_records() {
        let sets = [
            set("www.example.test.", "A", 300, &["192.0.2.1", "192.0.2.2"]),
            set("example.test.", "MX", 3600, &["10 mail"]),
            set("txt.example.test.", "TXT", 60, &["\"two words\" \"and more\""]),
            set("old.example.test.", "DNAME", 60, &["new.example.test."]),
            set("_sip._tcp.example.test.", "SRV", 60, &["1 2 5060 sip.example.test."]),
        ];
        for set in sets {
            let records = model::records_of(&origin(), &set).expect("valid");
            for record in records {
                let text = line(&record);
                let back = parse_line(&origin(), &text).unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(back, record, "{text}");
            }
        }
    }

    #[test]
    fn a_change_lists_the_old_and_new_records() {
        let old = set("www.example.test.", "A", 300, &["192.0.2.1", "192.0.2.1"]);
        let new = set("www.example.test.", "A", 300, &["192.0.2.9"]);
        let change = JournalEntry::change(&origin(), 7, 8, Some(&old), Some(&new));
        assert_eq!(
            change,
            entry(7, 8, &["www.example.test. 300 IN A 192.0.2.1"], &["www.example.test. 300 IN A 192.0.2.9"])
        );
        let deleted = JournalEntry::change(&origin(), 8, 9, Some(&new), None);
        assert_eq!(deleted.added, Vec::<String>::new());
        let broken = set("www.example.test.", "A", 300, &["not an address"]);
        assert!(JournalEntry::change(&origin(), 9, 10, Some(&broken), None).reset);
    }

    #[test]
    fn paths_follow_the_chain_and_stop_at_resets() {
        let mut journal = Journal::default();
        for e in [
            JournalEntry::reset(1, 100),
            entry(100, 101, &[], &[]),
            entry(101, 102, &[], &[]),
            entry(u32::MAX, 1, &[], &[]),
        ] {
            journal.insert(Arc::new(e));
        }
        assert_eq!(journal.path(100, 102).map(|p| p.len()), Some(2));
        assert_eq!(journal.path(102, 102).map(|p| p.len()), Some(0));
        assert!(journal.path(1, 102).is_none(), "a reset lies on the way");
        assert!(journal.path(99, 102).is_none(), "no entry starts at 99");
        assert!(journal.path(u32::MAX, 102).is_none());
    }

    #[test]
    fn condensing_cancels_what_came_and_went() {
        let a = "a.example.test. 60 IN A 192.0.2.1";
        let b = "b.example.test. 60 IN A 192.0.2.2";
        let c = "c.example.test. 60 IN A 192.0.2.3";
        let entries = [entry(1, 2, &[a], &[b]), entry(2, 3, &[b], &[c]), entry(3, 4, &[], &[a])];
        let refs: Vec<&JournalEntry> = entries.iter().collect();
        let (removed, added) = condense(&refs);
        assert!(removed.is_empty(), "a was removed and added back: {removed:?}");
        assert_eq!(added, vec![c.to_string()]);
    }
}
