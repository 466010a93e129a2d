//! How object records are stored: a compact positional form that opens with the fields a listing
//! needs, so a page of 1000 keys fetches and decodes only the first [`Listed::HEAD`] bytes of
//! each record (flaredb cuts the values), never the chunk lists. Records that earlier versions
//! wrote as JSON still decode (listings read those whole).
//!
//! Layout: format byte, flags (bit 0: delete marker), size, modified_ms (zigzag), etag | key,
//! version_id, content_type, headers (count, then name and value), chunks (count, then id, len,
//! sum and the replicas' count and names). Integers are LEB128 varints, strings a varint length
//! and UTF-8. A later format appends fields at the end: decoders ignore trailing bytes.
//!
//! Format 2 is format 1 followed by the object's data (a varint length and the bytes) for an
//! object kept inline; a version that reads only format 1 refuses it rather than serve an
//! empty body. Records without inline data are still written as format 1.

use flaredb_client::records::{FromRecord, ToRecord};

use super::{Listed, Object};
use crate::chunks::ChunkRef;

const FORMAT: u8 = 1;
/// Format 1 with the object's data after the chunks.
const FORMAT_INLINE: u8 = 2;
const DELETE_MARKER: u8 = 1;

struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.0.push(n as u8 | 0x80);
            n >>= 7;
        }
        self.0.push(n as u8);
    }

    fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self, field: &str) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or_else(|| format!("the record ends before its {field}"))?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self, field: &str) -> Result<u64, String> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte(field)?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(format!("the record's {field} is not a valid varint"))
    }

    fn bytes(&mut self, field: &str) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint(field)?).map_err(|_| format!("the record's {field} is too long"))?;
        let end = self.at.checked_add(len).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("the record ends inside its {field}"))?;
        let bytes = &self.bytes[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn str(&mut self, field: &str) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes(field)?).map_err(|_| format!("the record's {field} is not UTF-8"))
    }

    fn count(&mut self, field: &str) -> Result<usize, String> {
        let n = self.varint(field)?;
        // Every element takes at least a byte: a larger count is corrupt, not an allocation.
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.at)
            .ok_or_else(|| format!("the record's {field} count {n} is larger than the record"))
    }
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    (n >> 1) as i64 ^ -((n & 1) as i64)
}

/// The fields every record starts with, borrowed from its bytes; the reader stands after them.
struct Head<'a> {
    inline: bool,
    delete_marker: bool,
    size: u64,
    modified_ms: i64,
    etag: &'a str,
}

fn head(bytes: &[u8]) -> Result<(Head<'_>, Reader<'_>), String> {
    let mut r = Reader { bytes, at: 0 };
    let format = r.byte("format")?;
    if format != FORMAT && format != FORMAT_INLINE {
        return Err(format!(
            "record format {format} is not known to this version (it reads {FORMAT} and {FORMAT_INLINE})"
        ));
    }
    let flags = r.byte("flags")?;
    let size = r.varint("size")?;
    let modified_ms = unzigzag(r.varint("modified time")?);
    let etag = r.str("etag")?;
    Ok((
        Head { inline: format == FORMAT_INLINE, delete_marker: flags & DELETE_MARKER != 0, size, modified_ms, etag },
        r,
    ))
}

/// JSON records (from before this form) open with a brace; this form never does.
fn is_json(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
}

impl ToRecord for Object {
    fn to_record(&self) -> Result<Vec<u8>, String> {
        let data = self.inline.as_ref().map_or(0, |d| d.len() + 10);
        let mut w = Writer(Vec::with_capacity(128 + self.key.len() + self.chunks.len() * 112 + data));
        w.0.push(if self.inline.is_some() { FORMAT_INLINE } else { FORMAT });
        w.0.push(if self.delete_marker { DELETE_MARKER } else { 0 });
        w.varint(self.size);
        w.varint(zigzag(self.modified_ms));
        w.str(&self.etag);
        w.str(&self.key);
        w.str(&self.version_id);
        w.str(&self.content_type);
        w.varint(self.headers.len() as u64);
        for (name, value) in &self.headers {
            w.str(name);
            w.str(value);
        }
        w.varint(self.chunks.len() as u64);
        for chunk in &self.chunks {
            w.str(&chunk.id);
            w.varint(chunk.len);
            w.str(&chunk.sum);
            w.varint(chunk.replicas.len() as u64);
            for replica in &chunk.replicas {
                w.str(replica);
            }
        }
        if let Some(data) = &self.inline {
            w.varint(data.len() as u64);
            w.0.extend_from_slice(data);
        }
        Ok(w.0)
    }
}

impl FromRecord for Object {
    fn from_record(bytes: &[u8]) -> Result<Self, String> {
        if is_json(bytes) {
            return serde_json::from_slice(bytes).map_err(|e| e.to_string());
        }
        let (head, mut r) = head(bytes)?;
        let key = r.str("key")?.to_string();
        let version_id = r.str("version id")?.to_string();
        let content_type = r.str("content type")?.to_string();
        let mut headers = std::collections::BTreeMap::new();
        for _ in 0..r.count("headers")? {
            let name = r.str("header name")?;
            headers.insert(name.to_string(), r.str("header value")?.to_string());
        }
        let count = r.count("chunks")?;
        let mut chunks = Vec::with_capacity(count);
        for _ in 0..count {
            let id = r.str("chunk id")?.to_string();
            let len = r.varint("chunk length")?;
            let sum = r.str("chunk checksum")?.to_string();
            let replicas =
                (0..r.count("replicas")?).map(|_| r.str("replica").map(str::to_string)).collect::<Result<_, _>>()?;
            chunks.push(ChunkRef { id, len, sum, replicas });
        }
        let inline = if head.inline {
            let data = r.bytes("inline data")?;
            if data.len() as u64 != head.size {
                return Err(format!("the record holds {} bytes of data for an object of {}", data.len(), head.size));
            }
            Some(bytes::Bytes::copy_from_slice(data))
        } else {
            None
        };
        Ok(Object {
            key,
            size: head.size,
            etag: head.etag.to_string(),
            content_type,
            headers,
            modified_ms: head.modified_ms,
            chunks,
            inline,
            version_id,
            delete_marker: head.delete_marker,
        })
    }
}

impl FromRecord for Listed {
    /// The head's largest: format, flags, two 10-byte varints, and an etag of at most 38 bytes
    /// (an MD5 in hex, or one with `-<parts>` for multipart objects) with its length.
    const HEAD: usize = 64;

    fn from_record(bytes: &[u8]) -> Result<Self, String> {
        if is_json(bytes) {
            return serde_json::from_slice(bytes).map_err(|e| e.to_string());
        }
        let (head, _) = head(bytes)?;
        Ok(Listed {
            size: head.size,
            etag: head.etag.to_string(),
            modified_ms: head.modified_ms,
            delete_marker: head.delete_marker,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> Object {
        let mut object = Object::marker("a/ключ", -5);
        object.delete_marker = false;
        object.size = 300 << 20;
        object.etag = "0123456789abcdef0123456789abcdef-3".into();
        object.content_type = "text/plain".into();
        object.headers.insert("x-amz-meta-a".into(), "b".into());
        object.version_id = "v1".into();
        object.chunks = vec![
            ChunkRef { id: "c1".into(), len: 8 << 20, sum: "b3:00".into(), replicas: vec!["n1".into(), "n2".into()] },
            ChunkRef { id: "c2".into(), len: 1, sum: "ff".into(), replicas: Vec::new() },
        ];
        object
    }

    #[test]
    fn objects_round_trip_and_list_from_their_head() {
        let object = object();
        let bytes = object.to_record().unwrap();
        assert_eq!(Object::from_record(&bytes).unwrap(), object);
        let listed = Listed::from_record(&bytes[..Listed::HEAD]).unwrap();
        assert_eq!((listed.etag.as_str(), listed.size, listed.modified_ms), (object.etag.as_str(), 300 << 20, -5));
        let mut longest = object.clone();
        (longest.size, longest.modified_ms, longest.etag) = (u64::MAX, i64::MIN, format!("{}-10000", "f".repeat(32)));
        let head = &longest.to_record().unwrap()[..Listed::HEAD];
        assert_eq!(Listed::from_record(head).unwrap().etag, longest.etag, "the longest head fits in HEAD");
        let marker = Object::marker("k", i64::MAX);
        assert!(Listed::from_record(&marker.to_record().unwrap()).unwrap().delete_marker);
        assert_eq!(Object::from_record(&marker.to_record().unwrap()).unwrap(), marker);
    }

    #[test]
    fn inline_objects_round_trip_list_from_their_head_and_check_their_length() {
        let mut object = object();
        object.chunks.clear();
        object.size = 5;
        object.inline = Some(bytes::Bytes::from_static(b"hello"));
        let bytes = object.to_record().unwrap();
        assert_eq!(bytes[0], FORMAT_INLINE);
        assert_eq!(Object::from_record(&bytes).unwrap(), object);
        assert_eq!(Listed::from_record(&bytes[..Listed::HEAD.min(bytes.len())]).unwrap().size, 5);
        object.size = 6;
        let wrong = object.to_record().unwrap();
        assert!(Object::from_record(&wrong).unwrap_err().contains("5 bytes of data for an object of 6"));
        let mut empty = object.clone();
        (empty.size, empty.inline) = (0, Some(bytes::Bytes::new()));
        assert_eq!(Object::from_record(&empty.to_record().unwrap()).unwrap(), empty, "an empty object is inline");
        let mut unknown = bytes.clone();
        unknown[0] = 3;
        assert!(Object::from_record(&unknown).unwrap_err().contains("record format 3"));
    }

    #[test]
    fn json_records_still_decode() {
        let object = object();
        let json = serde_json::to_vec(&object).unwrap();
        assert_eq!(Object::from_record(&json).unwrap(), object);
        assert_eq!(Listed::from_record(&json).unwrap().etag, object.etag);
        assert!(Listed::from_record(&json[..Listed::HEAD]).is_err(), "cut JSON is read again whole");
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let bytes = object().to_record().unwrap();
        for end in 0..bytes.len() {
            assert!(Object::from_record(&bytes[..end]).is_err(), "cut at {end}");
        }
        let mut huge = bytes[..bytes.len() - 1].to_vec();
        huge.extend_from_slice(&[0xff; 10]);
        assert!(Object::from_record(&huge).is_err());
        assert!(Object::from_record(&[9, 0]).unwrap_err().contains("format 9"));
        let bad_utf8 = [FORMAT, 0, 0, 0, 1, 0xff];
        assert!(Listed::from_record(&bad_utf8).unwrap_err().contains("UTF-8"));
    }
}
