//! Text keys (RFC 7143 §6.1): `key=value` pairs separated by NUL bytes, as Login and Text PDUs
//! carry them, and the bounded buffer that joins a text split over several PDUs (C bit).

/// The most text one negotiation may send across continued PDUs; a real login is a few hundred
/// bytes.
pub const MAX_TEXT: usize = 64 * 1024;

/// Key names are at most 63 bytes (§6.1); values are bounded by the text itself.
const MAX_KEY: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("a text key is not of the form key=value")]
    NoEquals,
    #[error("a text key name is empty, too long or not printable")]
    BadKey,
    #[error("text is not UTF-8")]
    NotUtf8,
    #[error("text continued past {MAX_TEXT} bytes")]
    TooLong,
}

/// Parses NUL-separated `key=value` pairs (a trailing NUL is optional; empty items between
/// NULs are ignored, as some initiators pad with them).
pub fn parse(data: &[u8]) -> Result<Vec<(String, String)>, TextError> {
    let mut out = Vec::new();
    for item in data.split(|&b| b == 0) {
        if item.is_empty() {
            continue;
        }
        let item = std::str::from_utf8(item).map_err(|_| TextError::NotUtf8)?;
        let (key, value) = item.split_once('=').ok_or(TextError::NoEquals)?;
        if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TextError::BadKey);
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// Encodes pairs, each followed by a NUL.
pub fn encode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref().as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_ref().as_bytes());
        out.push(0);
    }
    out
}

/// Text arriving over PDUs with the C bit, joined up to `MAX_TEXT`.
#[derive(Debug, Default)]
pub struct Joiner {
    buf: Vec<u8>,
}

impl Joiner {
    /// Adds one PDU's text; returns the whole text once a PDU without the C bit arrives.
    pub fn push(&mut self, data: &[u8], more: bool) -> Result<Option<Vec<u8>>, TextError> {
        if self.buf.len() + data.len() > MAX_TEXT {
            self.buf.clear();
            return Err(TextError::TooLong);
        }
        self.buf.extend_from_slice(data);
        if more {
            Ok(None)
        } else {
            Ok(Some(std::mem::take(&mut self.buf)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes_pairs() {
        let text = b"InitiatorName=iqn.x\0SessionType=Normal\0\0HeaderDigest=None,CRC32C\0";
        let pairs = parse(text).unwrap();
        assert_eq!(pairs[0], ("InitiatorName".into(), "iqn.x".into()));
        assert_eq!(pairs[2], ("HeaderDigest".into(), "None,CRC32C".into()));
        assert_eq!(encode(&pairs[..1]), b"InitiatorName=iqn.x\0");
        assert_eq!(parse(b"A=b=c").unwrap(), vec![("A".into(), "b=c".into())]);
        assert_eq!(parse(b"A=").unwrap(), vec![("A".into(), "".into())]);
    }

    #[test]
    fn refuses_malformed_text() {
        assert_eq!(parse(b"novalue\0"), Err(TextError::NoEquals));
        assert_eq!(parse(b"=x\0"), Err(TextError::BadKey));
        assert_eq!(parse(&[b'A', b'=', 0xff]), Err(TextError::NotUtf8));
        let long = format!("{}=1", "K".repeat(64));
        assert_eq!(parse(long.as_bytes()), Err(TextError::BadKey));
    }

    #[test]
    fn joins_continued_text_within_the_limit() {
        let mut j = Joiner::default();
        assert_eq!(j.push(b"A=1\0B=", true), Ok(None));
        assert_eq!(j.push(b"2\0", false), Ok(Some(b"A=1\0B=2\0".to_vec())));
        let big = vec![b'x'; MAX_TEXT];
        assert_eq!(j.push(&big, true), Ok(None));
        assert_eq!(j.push(b"y", false), Err(TextError::TooLong));
    }
}
