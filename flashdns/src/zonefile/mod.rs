//! RFC 1035 master files: import of a zone's records from one, and export of a zone as one.
//!
//! Reading is two passes. Our own lexer (`lexer`) splits the text into logical entries with
//! the line each starts on, refusing `$INCLUDE`; then each record is read on its own
//! (`records`), its RDATA by hickory-proto's zone parser, so every error names a line. The
//! whole zone is checked last (`check`). DNAME, which hickory lacks, is held as
//! `RData::Unknown` with code DNAME and the target in wire form (`crate::dns::dname`).
//!
//! Limits that come from hickory's text parser: a label may hold letters, digits and `-`, with
//! `_` only at its start, `*` only as the whole label, and escaped dots (so `my_host` and RFC
//! 2317's `0/26` are refused); labels not starting with `_` are lowercased and Unicode ones
//! become punycode; types other than DNAME, TXT and those hickory parses (A, AAAA, NS, CNAME,
//! PTR, MX, SRV, SOA, CAA, SSHFP, TLSA, HINFO, NAPTR, SVCB, HTTPS, ...) need RFC 3597 generic
//! data (`TYPE65280 \# 3 abcdef`).

mod check;

mod export;
mod lexer;
mod records;
#[cfg(test)]
mod tests;

use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One parsed zone: its apex and its records, in file order, duplicates removed.
#[derive(Debug, Clone)]
pub struct ZoneFile {
    pub origin: Name,
    pub records: Vec<Record>,
}

/// Why a master file was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ZoneFileError {
    /// A problem with one entry; `line` is 1-based and is where the entry starts.
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// A problem with the zone as a whole, such as a missing SOA.
    #[error("{0}")]
    Zone(String),
}

/// Parses a master file. `origin` is the zone's name when known; without it the zone is the
/// owner of its SOA record. `$ORIGIN` in the file changes the origin for relative names only.
/// `default_ttl` applies to records without a TTL until the file has a `$TTL`.
pub fn parse(text: &str, origin: Option<&Name>, default_ttl: Option<u32>) -> Result<ZoneFile, ZoneFileError> {
    let origin = origin.map(fqdn);
    let records = records::read(text, origin.as_ref(), default_ttl)?;
    let apex = match origin {
        Some(origin) => origin,
        None => records
            .iter()
            .find(|(record, _)| record.record_type() == RecordType::SOA)
            .map(|(record, _)| record.name.clone())
            .ok_or_else(|| ZoneFileError::Zone("no SOA record at the zone apex".to_owned()))?,
    };
    check::zone(&apex, &records)?;
    Ok(ZoneFile { origin: apex, records: records.into_iter().map(|(record, _)| record).collect() })
}

/// Writes a zone as a master file: `$ORIGIN`, `$TTL` (the most common TTL), the SOA, the NS
/// records at the apex, then all other records in canonical order, one per line; owners are
/// relative to `origin` where they can be. `parse` of the result gives back the same records.
pub fn export(origin: &Name, records: &[Record]) -> String {
    export::export(&fqdn(origin), records)
}

/// A zone name is always absolute, whether or not the caller's `Name` says so.
fn fqdn(name: &Name) -> Name {
    let mut name = name.clone();
    name.set_fqdn(true);
    name
}

/// One record's RDATA as `export` writes it: the usual presentation form with absolute names,
/// or RFC 3597's `\# length hex` for types written in generic form (`export` then writes the
/// type as `TYPEnnn`). `parse` reads both; hickory's `RData::try_from_str` reads neither the
/// generic form nor the `\DDD` escapes of bytes outside printable ASCII.
pub fn rdata_text(data: &RData) -> String {
    export::rdata_text(data)
}

/// A type's mnemonic, or RFC 3597's `TYPEnnn` where hickory has none.
fn type_name(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

/// One record's data of type `rtype` from its master-file text (names relative to `origin`),
/// read exactly as a line of a zone file is: what the API stores for each record.
pub fn parse_rdata(rtype: RecordType, text: &str, origin: &Name) -> Result<hickory_proto::rr::RData, String> {
    // One record's data is one line: a line break could smuggle in a second record or a
    // directive.
    if text.contains(['\n', '\r']) {
        return Err("record data may not contain a line break".into());
    }
    let line = format!("@ 0 IN {} {text}\n", type_name(rtype));
    let mut records = records::read(&line, Some(origin), None).map_err(|e| match e {
        ZoneFileError::Syntax { message, .. } => message,
        ZoneFileError::Zone(message) => message,
    })?;
    match (records.pop(), records.is_empty()) {
        (Some((record, _)), true) if record.record_type() == rtype => Ok(record.data),
        _ => Err(format!("{text:?} is not one {} record's data", type_name(rtype))),
    }
}
