//! Writes a zone as an RFC 1035 master file that `parse` and knotd both read back: `$ORIGIN`,
//! `$TTL`, the SOA, the NS records at the apex, then everything else in canonical order
//! (RFC 4034 §6.1), one record per line.
//!
//! Names and strings are escaped here rather than with hickory's `Display`: hickory prints IDN
//! labels as Unicode, TXT strings unquoted, CAA values unescaped and `\DDD` in octal, none of
//! which another server reads back as the same data. Types without a text form we write
//! ourselves go out in RFC 3597 generic form (`TYPEnnn \# length hex`), which every RFC 3597
//! server reads.

use std::collections::HashMap;

use hickory_proto::rr::rdata::sshfp::HEX;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use super::type_name;
use crate::dns::dname;

/// Owner columns wider than this are not padded to: one odd name should not push every line.
const MAX_OWNER_WIDTH: usize = 40;

pub(super) fn export(origin: &Name, records: &[Record]) -> String {
    let default_ttl = most_common_ttl(records);
    let (mut soa, rest): (Vec<&Record>, Vec<&Record>) =
        records.iter().partition(|r| r.record_type() == RecordType::SOA);
    let (mut apex_ns, mut rest): (Vec<&Record>, Vec<&Record>) =
        rest.into_iter().partition(|r| r.record_type() == RecordType::NS && r.name == *origin);
    // Record's order is RFC 4034's canonical one: owner name, then type, then RDATA.
    soa.sort();
    apex_ns.sort();
    rest.sort();

    let lines: Vec<Line> =
        soa.into_iter().chain(apex_ns).chain(rest).map(|r| Line::new(origin, default_ttl, r)).collect();
    let owner_width = lines.iter().map(|l| l.owner.len()).filter(|&w| w <= MAX_OWNER_WIDTH).max().unwrap_or(0);
    let ttl_width = lines.iter().map(|l| l.ttl.len()).max().unwrap_or(0);
    let type_width = lines.iter().map(|l| l.rtype.len()).max().unwrap_or(0);

    let mut out = format!("$ORIGIN {}\n$TTL {default_ttl}\n", absolute(origin));
    for line in lines {
        let Line { owner, ttl, class, rtype, rdata } = line;
        let text = format!("{owner:<owner_width$} {ttl:>ttl_width$} {class} {rtype:<type_width$} {rdata}");
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// One record's columns.
struct Line {
    owner: String,
    /// Empty when the record has the `$TTL`.
    ttl: String,
    class: String,
    rtype: String,
    rdata: String,
}

impl Line {
    fn new(origin: &Name, default_ttl: u32, record: &Record) -> Self {
        let (rtype, rdata) = match presentation(&record.data) {
            Some(text) => (type_name(record.record_type()), text),
            None => (format!("TYPE{}", u16::from(record.record_type())), generic(&record.data)),
        };
        Self {
            owner: owner(&record.name, origin),
            ttl: if record.ttl == default_ttl { String::new() } else { record.ttl.to_string() },
            class: match record.dns_class {
                DNSClass::IN => "IN".to_owned(),
                other => format!("CLASS{}", u16::from(other)),
            },
            rtype,
            rdata,
        }
    }
}

/// The RDATA column: presentation form where we have one, generic form otherwise.
pub(super) fn rdata_text(data: &RData) -> String {
    presentation(data).unwrap_or_else(|| generic(data))
}

/// The TTL most records have, so that most lines can leave it out; ties go to the shorter TTL.
fn most_common_ttl(records: &[Record]) -> u32 {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for record in records {
        *counts.entry(record.ttl).or_default() += 1;
    }
    counts.into_iter().max_by_key(|&(ttl, count)| (count, std::cmp::Reverse(ttl))).map_or(3600, |(ttl, _)| ttl)
}

/// The usual text form of the RDATA, `None` where only the generic form is safe.
fn presentation(data: &RData) -> Option<String> {
    Some(match data {
        RData::A(a) => a.to_string(),
        RData::AAAA(aaaa) => aaaa.to_string(),
        RData::NS(ns) => absolute(&ns.0),
        RData::CNAME(cname) => absolute(&cname.0),
        RData::PTR(ptr) => absolute(&ptr.0),
        RData::MX(mx) => format!("{} {}", mx.preference, absolute(&mx.exchange)),
        RData::SRV(srv) => format!("{} {} {} {}", srv.priority, srv.weight, srv.port, absolute(&srv.target)),
        // hickory keeps these intervals as i32; a negative one has no text form to read back.
        RData::SOA(soa) if soa.refresh >= 0 && soa.retry >= 0 && soa.expire >= 0 => format!(
            "{} {} {} {} {} {} {}",
            absolute(&soa.mname),
            absolute(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        RData::TXT(txt) if !txt.txt_data.is_empty() => {
            txt.txt_data.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(" ")
        }
        // The CAA tag is a bare word (RFC 8659 §4.1.1); the value goes through hickory's text
        // parser on the way back in, which only takes UTF-8.
        RData::CAA(caa)
            if !caa.tag.is_empty()
                && caa.tag.bytes().all(|b| b.is_ascii_alphanumeric())
                && std::str::from_utf8(&caa.value).is_ok() =>
        {
            format!("{} {} {}", caa.flags(), caa.tag, quoted(&caa.value))
        }
        RData::SSHFP(sshfp) if !sshfp.fingerprint.is_empty() => sshfp.to_string(),
        RData::TLSA(tlsa) if !tlsa.cert_data.is_empty() => tlsa.to_string(),
        other => return dname::target(other).map(|target| absolute(&target)),
    })
}

/// RFC 3597 §5: `\# <length> <hex>` of the uncompressed wire form, as hickory encodes it.
fn generic(data: &RData) -> String {
    let mut bytes = Vec::new();
    let encoded = {
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_name_encoding(NameEncoding::Uncompressed);
        data.emit(&mut encoder)
    };
    match encoded {
        Ok(()) if bytes.is_empty() => "\\# 0".to_owned(),
        Ok(()) => format!("\\# {} {}", bytes.len(), HEX.encode(&bytes)),
        // Only RDATA that never came from a parse can fail to encode; a comment keeps the file
        // loadable and says what is missing.
        Err(e) => format!("\\# 0 ; this record could not be encoded: {e}"),
    }
}

/// The owner column: `@` for the origin, relative below it, absolute elsewhere.
fn owner(name: &Name, origin: &Name) -> String {
    if name == origin {
        return "@".to_owned();
    }
    if !name.is_fqdn() || !origin.zone_of(name) {
        return absolute(name);
    }
    let relative = name.iter().count() - origin.iter().count();
    name.iter().take(relative).map(label).collect::<Vec<_>>().join(".")
}

/// A name with its trailing dot, escaped per RFC 1035 §5.1.
fn absolute(name: &Name) -> String {
    let labels: Vec<String> = name.iter().map(label).collect();
    format!("{}.", labels.join("."))
}

fn label(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'*' => out.push(char::from(b)),
            // Printable specials (`.`, `;`, `(`, `@`, `$`, ...) keep their byte behind a backslash.
            0x21..=0x7e => {
                out.push('\\');
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out
}

/// A <character-string> in quotes, with `\DDD` (decimal) for everything not printable ASCII.
fn quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("valid name")
    }

    #[test]
    fn owners_are_relative_inside_the_origin_and_absolute_outside() {
        let origin = name("example.com.");
        assert_eq!(owner(&name("example.com."), &origin), "@");
        assert_eq!(owner(&name("a.b.example.com."), &origin), "a.b");
        assert_eq!(owner(&name("example.org."), &origin), "example.org.");
        assert_eq!(absolute(&Name::root()), ".");
    }

    #[test]
    fn special_bytes_are_escaped_in_decimal() {
        assert_eq!(label(b"a.b c\xff"), "a\\.b\\032c\\255");
        assert_eq!(quoted(b"say \"hi\"; \\ \x07"), "\"say \\\"hi\\\"; \\\\ \\007\"");
    }

    #[test]
    fn default_ttl_is_the_most_common_one() {
        let address = RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1));
        let at = |ttl| Record::from_rdata(name("a.example.com."), ttl, address.clone());
        assert_eq!(most_common_ttl(&[at(60), at(300), at(300)]), 300);
        assert_eq!(most_common_ttl(&[at(600), at(60)]), 60);
        assert_eq!(most_common_ttl(&[]), 3600);
    }
}
