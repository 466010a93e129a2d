//! Turns the lexer's entries into records: applies `$ORIGIN` and `$TTL`, works out owner, TTL,
//! class and type (RFC 1035 §5.1), and has hickory's zone parser read each record's RDATA.
//!
//! hickory is handed one record at a time, already on one line, so that its errors belong to a
//! known line. Three kinds of RDATA do not go through it: DNAME (hickory has no DNAME), TXT
//! (hickory's lexer decodes `\DDD` wrongly and only keeps UTF-8), and RFC 3597 generic data
//! (`\# length hex`, which hickory's text parser does not know but its wire decoder does).

use std::borrow::Cow;
use std::collections::HashSet;
use std::str::FromStr;

use hickory_proto::rr::rdata::{sshfp::HEX, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};
use hickory_proto::serialize::txt::{parse_ttl, ParseError, Parser};

use super::lexer::{self, Entry, Token};
use super::{type_name, ZoneFileError};
use crate::dns::dname;

/// Reads every record of `text`, in file order, each with the line its entry starts on.
/// Exact duplicates are dropped, as RFC 2181 §5 asks.
pub(super) fn read(
    text: &str,
    origin: Option<&Name>,
    default_ttl: Option<u32>,
) -> Result<Vec<(Record, usize)>, ZoneFileError> {
    let mut reader = Reader {
        origin: origin.cloned(),
        default_ttl,
        last_ttl: None,
        owner: None,
        seen: HashSet::new(),
        records: Vec::new(),
    };
    for entry in lexer::entries(text)? {
        reader.entry(&entry).map_err(|message| ZoneFileError::Syntax { line: entry.line, message })?;
    }
    Ok(reader.records)
}

/// What earlier entries leave behind for later ones.
struct Reader {
    /// Completes relative names; `$ORIGIN` changes it.
    origin: Option<Name>,
    /// `$TTL`, or the caller's default until the file says otherwise.
    default_ttl: Option<u32>,
    /// The last explicit TTL: RFC 1035's default when there is no `$TTL`.
    last_ttl: Option<u32>,
    /// The previous owner, for entries that start with a blank.
    owner: Option<Name>,
    seen: HashSet<(Name, RData)>,
    records: Vec<(Record, usize)>,
}

impl Reader {
    fn entry(&mut self, entry: &Entry<'_>) -> Result<(), String> {
        let (first, rest) = entry.tokens.split_first().ok_or("empty entry")?;
        if !first.quoted && first.text.starts_with('$') {
            return self.directive(first.text, rest);
        }
        let (owner, rest) = if entry.owner_omitted {
            let owner = self.owner.clone().ok_or("the first record starts with a blank but has no owner to repeat")?;
            (owner, entry.tokens.as_slice())
        } else {
            (self.name(first)?, rest)
        };
        self.owner = Some(owner.clone());

        let (ttl, rtype, fields) = ttl_class_type(rest)?;
        if self.origin.is_none() && rtype == RecordType::SOA {
            // A file without $ORIGIN (an AXFR dump, say) names its apex with the SOA it starts with.
            self.origin = Some(owner.clone());
        }
        let ttl = match ttl {
            Some(ttl) => {
                self.last_ttl = Some(ttl);
                ttl
            }
            None => {
                self.default_ttl.or(self.last_ttl).ok_or("the record has no TTL: give it one or put $TTL before it")?
            }
        };
        let data = self.rdata(rtype, fields)?;
        if self.seen.insert((owner.clone(), data.clone())) {
            self.records.push((Record::from_rdata(owner, ttl, data), entry.line));
        }
        Ok(())
    }

    fn directive(&mut self, directive: &str, args: &[Token<'_>]) -> Result<(), String> {
        let single = || match args {
            [arg] => Ok(arg),
            _ => Err(format!("{directive} takes exactly one value")),
        };
        if directive.eq_ignore_ascii_case("$ORIGIN") {
            let name = self.name(single()?)?;
            self.origin = Some(name);
        } else if directive.eq_ignore_ascii_case("$TTL") {
            let arg = single()?;
            self.default_ttl = Some(parse_ttl(arg.text).map_err(|_| format!("bad TTL {}", arg.text))?);
        } else if directive.eq_ignore_ascii_case("$INCLUDE") {
            return Err("$INCLUDE is not supported: import the included file's records directly".into());
        } else {
            return Err(format!("unknown directive {directive}"));
        }
        Ok(())
    }

    /// A domain name field: `@` is the origin, names without a trailing dot are relative to it.
    fn name(&self, token: &Token<'_>) -> Result<Name, String> {
        if token.is("@") {
            return self
                .origin
                .clone()
                .ok_or_else(|| "@ stands for the origin, but none is known yet: add $ORIGIN".into());
        }
        let text = decimal_to_octal_escapes(token.text)?;
        let name = Name::parse(&text, self.origin.as_ref()).map_err(|e| format!("bad name {}: {e}", token.text))?;
        if !name.is_fqdn() {
            return Err(format!(
                "{} is relative, but no origin is known yet: add $ORIGIN or a trailing dot",
                token.text
            ));
        }
        Ok(name)
    }

    fn rdata(&self, rtype: RecordType, fields: &[Token<'_>]) -> Result<RData, String> {
        if let Some((_, rest)) = fields.split_first().filter(|(first, _)| first.is("\\#")) {
            return generic(rtype, rest);
        }
        if fields.is_empty() {
            return Err(format!("the {} record has no data", type_name(rtype)));
        }
        if let Some(count) = field_count(rtype).filter(|&count| count != fields.len()) {
            return Err(format!(
                "{} takes {count} field{}, found {}: {}",
                type_name(rtype),
                if count == 1 { "" } else { "s" },
                fields.len(),
                joined(fields)
            ));
        }
        match rtype {
            // field_count has made sure a DNAME has exactly one field.
            RecordType::DNAME => dname::rdata(&self.name(&fields[0])?),
            RecordType::TXT => txt(fields),
            _ => self.hickory_rdata(rtype, fields),
        }
    }

    /// Has hickory's zone parser read one record: the only public way into its per-type RDATA
    /// parsers that also completes relative names.
    fn hickory_rdata(&self, rtype: RecordType, fields: &[Token<'_>]) -> Result<RData, String> {
        let origin =
            self.origin.as_ref().ok_or("no origin is known yet: add $ORIGIN, or start the file with the SOA record")?;
        let mut texts = fields.iter().map(|field| hickory_field(field, origin)).collect::<Result<Vec<_>, _>>()?;
        if rtype == RecordType::SSHFP && texts.len() > 3 {
            // RFC 4255 allows the fingerprint in several pieces; hickory wants one.
            let fingerprint = texts.split_off(2).concat();
            texts.push(fingerprint);
        }
        let line = format!("@ 0 IN {} {}\n", type_name(rtype), texts.join(" "));
        let (_, sets) =
            Parser::new(line, None, Some(origin.clone())).parse().map_err(|e| bad_data(rtype, fields, &e))?;
        let data = sets
            .into_values()
            .find_map(|set| set.into_parts().records.into_iter().next())
            .map(|record| record.data)
            .ok_or_else(|| format!("hickory read no {} record", type_name(rtype)))?;
        // RFC 8659 §4.1.1: a CAA tag is letters and digits. hickory takes any text, which then
        // has no master-file form to export (a fuzzer found `0 %e 2`).
        if let RData::CAA(caa) = &data {
            if caa.tag.is_empty() || !caa.tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("CAA tag {:?} is not letters and digits (RFC 8659)", caa.tag));
            }
        }
        Ok(data)
    }
}

/// One field as hickory's lexer will read it the way the file means it.
fn hickory_field(field: &Token<'_>, origin: &Name) -> Result<String, String> {
    if field.quoted {
        requote(field.text)
    } else if field.is("@") {
        // hickory's lexer refuses `@` anywhere but in the owner column.
        Ok(origin.to_ascii())
    } else {
        decimal_to_octal_escapes(field.text).map(Cow::into_owned)
    }
}

/// Splits `[<TTL>] [<class>] <type>` (either order, RFC 1035 §5.1) from the RDATA fields.
fn ttl_class_type<'t, 'a>(tokens: &'t [Token<'a>]) -> Result<(Option<u32>, RecordType, &'t [Token<'a>]), String> {
    let mut ttl = None;
    let mut class_seen = false;
    for (i, token) in tokens.iter().enumerate() {
        // TTLs start with a digit and class and type mnemonics never do, so the first digit
        // decides, and a typo like `1x` is reported as a bad TTL rather than an unknown type.
        if ttl.is_none() && !token.quoted && token.text.starts_with(|c: char| c.is_ascii_digit()) {
            ttl = Some(parse_ttl(token.text).map_err(|_| format!("bad TTL {}", token.text))?);
            continue;
        }
        let upper = token.text.to_ascii_uppercase();
        if !class_seen && is_class(&upper) {
            if upper != "IN" && upper != "CLASS1" {
                return Err(format!("class {} is not supported: only IN", token.text));
            }
            class_seen = true;
            continue;
        }
        let rtype = record_type(&upper).ok_or_else(|| format!("unknown record type {}", token.text))?;
        if matches!(
            rtype,
            RecordType::ANY
                | RecordType::AXFR
                | RecordType::IXFR
                | RecordType::OPT
                | RecordType::TSIG
                | RecordType::ZERO
        ) {
            return Err(format!("{} is not a record type a zone can hold", token.text));
        }
        return Ok((ttl, rtype, &tokens[i + 1..]));
    }
    Err("the record has no type".into())
}

fn is_class(upper: &str) -> bool {
    matches!(upper, "IN" | "CH" | "CHAOS" | "HS" | "HESIOD" | "NONE" | "ANY")
        || upper.strip_prefix("CLASS").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A type mnemonic, or RFC 3597's `TYPEnnn` for any type.
fn record_type(upper: &str) -> Option<RecordType> {
    if let Some(code) = upper.strip_prefix("TYPE").and_then(|n| n.parse::<u16>().ok()) {
        return Some(RecordType::from(code));
    }
    RecordType::from_str(upper).ok()
}

/// Types whose RDATA has a fixed number of fields. hickory ignores fields it does not need, so
/// `A 192.0.2.1 192.0.2.2` would quietly lose an address without this check.
fn field_count(rtype: RecordType) -> Option<usize> {
    match rtype {
        RecordType::A
        | RecordType::AAAA
        | RecordType::NS
        | RecordType::CNAME
        | RecordType::PTR
        | RecordType::DNAME
        | RecordType::ANAME => Some(1),
        RecordType::MX => Some(2),
        RecordType::CAA => Some(3),
        RecordType::SRV => Some(4),
        RecordType::SOA => Some(7),
        _ => None,
    }
}

fn txt(fields: &[Token<'_>]) -> Result<RData, String> {
    let strings = fields.iter().map(|field| lexer::unescape(field.text)).collect::<Result<Vec<_>, _>>()?;
    if let Some(long) = strings.iter().find(|s| s.len() > 255) {
        return Err(format!(
            "a TXT string of {} bytes is longer than 255: split it into several quoted strings",
            long.len()
        ));
    }
    Ok(RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect())))
}

/// RFC 3597 §5: `\# <length> <hex>`, decoded by hickory's wire decoder for the type.
fn generic(rtype: RecordType, fields: &[Token<'_>]) -> Result<RData, String> {
    let (length, hex) = fields.split_first().ok_or("\\# needs the data length")?;
    let length: u16 = length.text.parse().map_err(|_| format!("bad \\# data length {}", length.text))?;
    let hex: String = hex.iter().map(|t| t.text).collect();
    let bytes = HEX.decode(hex.as_bytes()).map_err(|e| format!("bad \\# hex data: {e}"))?;
    if bytes.len() != usize::from(length) {
        return Err(format!("\\# says {length} bytes, but the hex data has {}", bytes.len()));
    }
    let data = RData::read(&mut BinDecoder::new(&bytes), rtype, Restrict::new(length))
        .map_err(|e| format!("bad {} data in \\# form: {e}", type_name(rtype)))?;
    if rtype == RecordType::DNAME && dname::target(&data).is_none() {
        return Err("bad DNAME data in \\# form: not exactly one domain name".into());
    }
    Ok(data)
}

fn bad_data(rtype: RecordType, fields: &[Token<'_>], error: &ParseError) -> String {
    match (rtype, error) {
        (RecordType::A | RecordType::AAAA, _) => format!("bad {rtype} address {}", joined(fields)),
        (_, ParseError::UnsupportedRecordType(_)) => format!(
            "{} records cannot be read as text here: write the data in RFC 3597 form (\\# length hex)",
            type_name(rtype)
        ),
        _ => format!("bad {} data {}: {error}", type_name(rtype), joined(fields)),
    }
}

fn joined(fields: &[Token<'_>]) -> String {
    let quoted = |t: &Token<'_>| if t.quoted { format!("\"{}\"", t.text) } else { t.text.to_owned() };
    fields.iter().map(quoted).collect::<Vec<_>>().join(" ")
}

/// Re-quotes a quoted field for hickory's lexer, which decodes `\X` correctly but reads `\DDD`
/// as `(d1 << 16) + (d2 << 8) + d3`: decode it here and hand hickory only `\"` and `\\`.
fn requote(text: &str) -> Result<String, String> {
    let decoded = String::from_utf8(lexer::unescape(text)?)
        .map_err(|_| format!("\"{text}\" is not UTF-8, which this record type's parser requires"))?;
    Ok(format!("\"{}\"", decoded.replace('\\', "\\\\").replace('"', "\\\"")))
}

/// hickory's name parser reads `\DDD` as octal, where RFC 1035 means decimal; rewriting each
/// escape in octal makes it read the byte the file means. Bytes above 127 are refused: hickory
/// would take each for a Latin-1 character and punycode the label into a different name.
fn decimal_to_octal_escapes(text: &str) -> Result<Cow<'_, str>, String> {
    if !text.contains('\\') {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len() + 2);
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match lexer::decimal_escape(text.as_bytes(), i)? {
            Some(value) if value > 127 => {
                return Err(format!(
                    "{text}: escaped bytes above 127 are not supported in names, write the label in Unicode or as xn--"
                ));
            }
            Some(value) => {
                out.push_str(&format!("\\{value:03o}"));
                chars.nth(2);
            }
            None => {
                out.push('\\');
                out.extend(chars.next().map(|(_, escaped)| escaped));
            }
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Record, ZoneFileError> {
        let origin = Name::from_ascii("example.com.").expect("valid");
        let mut records = read(text, Some(&origin), Some(300))?;
        assert_eq!(records.len(), 1, "{records:?}");
        Ok(records.remove(0).0)
    }

    #[test]
    fn ttl_and_class_in_either_order() {
        assert_eq!(one("www 1h30m IN A 192.0.2.1").expect("valid").ttl, 5400);
        assert_eq!(one("www IN 60 A 192.0.2.1").expect("valid").ttl, 60);
        assert_eq!(one("www a 192.0.2.1").expect("valid").ttl, 300);
    }

    #[test]
    fn decimal_escapes_reach_hickory_as_the_right_byte() {
        // \048 is '0' in decimal; read as octal it would be '('.
        let record = one("a\\048b CNAME x\\049y").expect("valid");
        assert_eq!(record.name.to_ascii(), "a0b.example.com.");
        assert_eq!(
            record.data,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(Name::from_ascii("x1y.example.com.").expect("valid")))
        );
    }

    #[test]
    fn escaped_high_bytes_in_names_are_refused_not_mangled() {
        let err = one(r"caf\195\169 A 192.0.2.1").expect_err("Latin-1 misreading");
        assert!(err.to_string().contains("escaped bytes above 127"), "{err}");
        assert_eq!(one("café A 192.0.2.1").expect("Unicode").name.to_ascii(), "xn--caf-dma.example.com.");
    }

    #[test]
    fn sshfp_fingerprint_may_be_split() {
        let record =
            one("h SSHFP 4 2 ( 0123456789abcdef0123456789abcdef\n 0123456789abcdef0123456789abcdef )").expect("valid");
        let RData::SSHFP(sshfp) = record.data else { panic!("not SSHFP") };
        assert_eq!(sshfp.fingerprint.len(), 32);
    }

    #[test]
    fn generic_form_reads_known_and_unknown_types() {
        let record = one("g TYPE1 \\# 4 C0000201").expect("valid");
        assert_eq!(record.data.ip_addr(), Some("192.0.2.1".parse().expect("valid")));
        let record = one("g TYPE65280 \\# 3 abcdef").expect("valid");
        assert_eq!(record.record_type(), RecordType::Unknown(65280));
        assert!(one("g TYPE65280 \\# 4 abcdef").is_err());
    }

    #[test]
    fn classes_other_than_in_are_refused() {
        let err = one("www CH A 192.0.2.1").expect_err("CH");
        assert!(err.to_string().contains("class CH is not supported"), "{err}");
    }

    #[test]
    fn surplus_fields_are_refused() {
        let err = one("www A 192.0.2.1 192.0.2.2").expect_err("two addresses");
        assert!(err.to_string().contains("A takes 1 field, found 2"), "{err}");
    }
}
