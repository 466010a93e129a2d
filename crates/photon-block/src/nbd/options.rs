//! The payloads of the options a client sends while haggling, parsed once on receipt into
//! plain values (`NBD_OPT_INFO`/`GO`, the meta-context options), and which contexts a query
//! names. Pure: the handshake decides and does the I/O.

use super::proto::{BASE_ALLOCATION, MAX_STRING};

/// Why option data could not be parsed; answered with `NBD_REP_ERR_INVALID` and this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadOption(pub &'static str);

/// `NBD_OPT_INFO` and `NBD_OPT_GO`: an export name and the information items asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoRequest {
    pub name: String,
    pub requests: Vec<u16>,
}

/// `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT`: an export and its queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRequest {
    pub name: String,
    pub queries: Vec<String>,
}

/// A cursor over option data that never reads past its end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BadOption> {
        if self.0.len() < n {
            return Err(BadOption("option data is shorter than its fields say"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16, BadOption> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, BadOption> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A string preceded by its 32-bit length.
    fn string(&mut self) -> Result<String, BadOption> {
        let len = self.u32()? as usize;
        if len > MAX_STRING {
            return Err(BadOption("a string is longer than 4096 bytes"));
        }
        string(self.take(len)?)
    }

    fn finish(&self) -> Result<(), BadOption> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(BadOption("option data is longer than its fields say"))
        }
    }
}

/// A protocol string: UTF-8 without NULs, at most 4096 bytes.
pub fn string(bytes: &[u8]) -> Result<String, BadOption> {
    if bytes.len() > MAX_STRING {
        return Err(BadOption("a string is longer than 4096 bytes"));
    }
    if bytes.contains(&0) {
        return Err(BadOption("a string contains NUL"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| BadOption("a string is not UTF-8"))
}

pub fn parse_info(data: &[u8]) -> Result<InfoRequest, BadOption> {
    let mut c = Cursor(data);
    let name = c.string()?;
    let n = c.u16()?;
    let mut requests = Vec::with_capacity(usize::from(n).min(c.0.len() / 2));
    for _ in 0..n {
        requests.push(c.u16()?);
    }
    c.finish()?;
    Ok(InfoRequest { name, requests })
}

pub fn parse_meta(data: &[u8]) -> Result<MetaRequest, BadOption> {
    let mut c = Cursor(data);
    let name = c.string()?;
    let n = c.u32()?;
    // Each query takes at least its 4-byte length, so the data bounds the count.
    let mut queries = Vec::with_capacity((n as usize).min(c.0.len() / 4));
    for _ in 0..n {
        queries.push(c.string()?);
    }
    c.finish()?;
    Ok(MetaRequest { name, queries })
}

/// Whether `base:allocation` answers a `NBD_OPT_LIST_META_CONTEXT`: no queries means "all",
/// and `base:` is the namespace's wildcard.
pub fn list_matches(queries: &[String]) -> bool {
    queries.is_empty() || queries.iter().any(|q| q == "base:" || q == BASE_ALLOCATION)
}

/// Whether a `NBD_OPT_SET_META_CONTEXT` selects `base:allocation`: only by its full name
/// (the wildcard selects nothing, and no queries select nothing).
pub fn set_selects(queries: &[String]) -> bool {
    queries.iter().any(|q| q == BASE_ALLOCATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info_bytes(name: &[u8], requests: &[u16]) -> Vec<u8> {
        let mut out = (name.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(name);
        out.extend_from_slice(&(requests.len() as u16).to_be_bytes());
        for r in requests {
            out.extend_from_slice(&r.to_be_bytes());
        }
        out
    }

    #[test]
    fn info_parses_name_and_requests() {
        let req = parse_info(&info_bytes(b"vol", &[3, 1])).unwrap();
        assert_eq!(req, InfoRequest { name: "vol".into(), requests: vec![3, 1] });
        assert_eq!(parse_info(&info_bytes(b"", &[])).unwrap().name, "");
    }

    #[test]
    fn info_rejects_inconsistent_lengths() {
        let mut long = info_bytes(b"vol", &[3]);
        long.push(0);
        assert!(parse_info(&long).is_err());
        let good = info_bytes(b"vol", &[3, 1]);
        assert!(parse_info(&good[..good.len() - 1]).is_err());
        assert!(parse_info(&[0xff, 0xff, 0xff, 0xff, 0, 0]).is_err());
        assert!(parse_info(&[]).is_err());
        // The count claims more requests than the data holds.
        let mut many = info_bytes(b"v", &[]);
        let at = many.len() - 2;
        many[at..].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(parse_info(&many).is_err());
    }

    #[test]
    fn strings_must_be_utf8_without_nul() {
        assert!(parse_info(&info_bytes(b"a\0b", &[])).is_err());
        assert!(parse_info(&info_bytes(&[0xff, 0xfe], &[])).is_err());
    }

    fn meta_bytes(name: &str, queries: &[&str]) -> Vec<u8> {
        let mut out = (name.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(queries.len() as u32).to_be_bytes());
        for q in queries {
            out.extend_from_slice(&(q.len() as u32).to_be_bytes());
            out.extend_from_slice(q.as_bytes());
        }
        out
    }

    #[test]
    fn meta_parses_queries() {
        let req = parse_meta(&meta_bytes("vol", &["base:allocation", "qemu:dirty-bitmap:x"])).unwrap();
        assert_eq!(req.name, "vol");
        assert_eq!(req.queries, vec!["base:allocation".to_string(), "qemu:dirty-bitmap:x".to_string()]);
    }

    #[test]
    fn meta_rejects_a_count_beyond_the_data() {
        let mut data = meta_bytes("vol", &[]);
        let at = data.len() - 4;
        data[at..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_meta(&data).is_err());
    }

    #[test]
    fn which_queries_match() {
        let q = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(list_matches(&q(&[])));
        assert!(list_matches(&q(&["base:"])));
        assert!(list_matches(&q(&["base:allocation"])));
        assert!(!list_matches(&q(&["qemu:"])));
        assert!(!set_selects(&q(&[])));
        assert!(!set_selects(&q(&["base:"])));
        assert!(set_selects(&q(&["x-foo:bar", "base:allocation"])));
    }
}
