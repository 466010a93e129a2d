//! ListObjects (v1 with `marker`, v2 with `continuation-token` and `start-after`): keys in
//! order under a prefix, grouped into CommonPrefixes at a delimiter, at most `max-keys` (1000)
//! per page, keys URL-encoded when asked (`encoding-type=url`). A page is read by range scans
//! from where the last one ended, jumping past the keys a common prefix stands for.

use std::borrow::Cow;

use axum::response::Response;

use super::address::Target;
use super::bucket::xml_response;
use super::error::S3Error;
use super::policy::Op;
use super::service::{Call, S3};
use super::xml::Xml;
use crate::meta::{objects_prefix, Listed};

/// One page: the objects and common prefixes after `after`, and whether more follow.
struct Page {
    /// Keys and their objects.
    objects: Vec<(String, Listed)>,
    prefixes: Vec<String>,
    truncated: bool,
}

impl Page {
    /// The last key or prefix returned (where the next page starts after): keys are offered in
    /// order, so it is the greater of the last object and the last prefix.
    fn last(&self) -> Option<&str> {
        let object = self.objects.last().map(|(key, _)| key.as_str());
        let prefix = self.prefixes.last().map(String::as_str);
        object.max(prefix)
    }
}

/// What the scan does after offering a key to the page.
#[derive(Debug, PartialEq)]
enum Step {
    Next,
    /// Every key under this common prefix is accounted for: resume after them.
    SkipPast(String),
    Full,
}

/// The common prefix `key` rolls up into: `prefix` plus everything up to and including the
/// first `delimiter` after it.
pub(super) fn common_prefix(key: &str, prefix: &str, delimiter: &str) -> Option<String> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.get(prefix.len()..)?;
    rest.find(delimiter).map(|i| key[..prefix.len() + i + delimiter.len()].to_string())
}

/// Fills a page from keys offered in order.
struct Pager<'a> {
    prefix: &'a str,
    delimiter: &'a str,
    after: &'a str,
    max: usize,
    page: Page,
}

impl Pager<'_> {
    fn offer(&mut self, key: String, object: Listed) -> Step {
        if object.delete_marker || !key.starts_with(self.prefix) || key.as_str() <= self.after {
            return Step::Next;
        }
        let rolled = common_prefix(&key, self.prefix, self.delimiter);
        if let Some(common) = &rolled {
            if self.page.prefixes.last() == Some(common) || common.as_str() <= self.after {
                return Step::SkipPast(common.clone());
            }
        }
        if self.page.objects.len() + self.page.prefixes.len() == self.max {
            self.page.truncated = true;
            return Step::Full;
        }
        match rolled {
            Some(common) => {
                self.page.prefixes.push(common.clone());
                Step::SkipPast(common)
            }
            None => {
                self.page.objects.push((key, object));
                Step::Next
            }
        }
    }
}

/// A listing's `max-keys`: at most (and by default) 1000.
pub(super) fn max_keys(call: &Call) -> Result<usize, S3Error> {
    match call.query.get("max-keys") {
        Some(n) => Ok(n.parse::<usize>().map_err(|_| S3Error::invalid_argument("max-keys is not a number"))?.min(1000)),
        None => Ok(1000),
    }
}

pub(super) fn url_encode(text: &str) -> String {
    photon_auth::sigv4::encode(text).replace("%2F", "/")
}

/// `text` URL-encoded when the listing asked for it (`encoding-type=url`), else as it is.
fn url_encoded(url: bool, text: &str) -> Cow<'_, str> {
    if url {
        Cow::Owned(url_encode(text))
    } else {
        Cow::Borrowed(text)
    }
}

impl S3 {
    pub async fn list_objects(&self, call: &Call) -> Result<Response, S3Error> {
        let Target::Bucket(name) = &call.target else { return Err(S3Error::invalid_request("no bucket")) };
        let bucket = self.bucket_for_read(name).await?;
        self.allow(call, &bucket, Op::LIST_OBJECTS, None).await?;
        let get = |k: &str| call.query.get(k).cloned().unwrap_or_default();
        let (prefix, delimiter) = (get("prefix"), get("delimiter"));
        let max = max_keys(call)?;
        let url = match call.query.get("encoding-type").map(String::as_str) {
            None => false,
            Some("url") => true,
            Some(other) => return Err(S3Error::invalid_argument(format!("encoding-type {other:?} is not 'url'"))),
        };
        let enc = |text| url_encoded(url, text);
        let v2 = get("list-type") == "2";
        let token = get("continuation-token");
        let after = if v2 {
            if token.is_empty() {
                get("start-after")
            } else {
                decode_token(&token)?
            }
        } else {
            get("marker")
        };
        let page = self.scan_page(name, &prefix, &delimiter, &after, max).await?;
        let mut xml = Xml::with_capacity("ListBucketResult", 512 + 256 * (page.objects.len() + page.prefixes.len()));
        xml.field("Name", name).field("Prefix", enc(&prefix)).field("MaxKeys", max);
        if !delimiter.is_empty() {
            xml.field("Delimiter", enc(&delimiter));
        }
        if url {
            xml.field("EncodingType", "url");
        }
        xml.field("IsTruncated", page.truncated);
        if v2 {
            xml.field("KeyCount", page.objects.len() + page.prefixes.len());
            if !token.is_empty() {
                xml.field("ContinuationToken", &token);
            }
            if let Some(start_after) = call.query.get("start-after") {
                xml.field("StartAfter", enc(start_after));
            }
            if let (true, Some(last)) = (page.truncated, page.last()) {
                xml.field("NextContinuationToken", encode_token(last));
            }
        } else {
            xml.field("Marker", enc(&after));
            if let (true, Some(last)) = (page.truncated, page.last()) {
                xml.field("NextMarker", enc(last));
            }
        }
        for (key, object) in &page.objects {
            xml.open("Contents")
                .text("Key", &enc(key))
                .time("LastModified", object.modified_ms)
                .etag(&object.etag)
                .number("Size", object.size)
                .raw("<StorageClass>STANDARD</StorageClass>")
                .close("Contents");
        }
        for common in &page.prefixes {
            xml.open("CommonPrefixes").text("Prefix", &enc(common)).close("CommonPrefixes");
        }
        Ok(xml_response(xml.finish("ListBucketResult")))
    }
}

impl S3 {
    /// One page of bucket `name` by range scans from `after`, jumping past each common prefix
    /// instead of reading the keys under it.
    async fn scan_page(
        &self,
        name: &str,
        prefix: &str,
        delimiter: &str,
        after: &str,
        max: usize,
    ) -> Result<Page, S3Error> {
        let base = objects_prefix(name);
        let scope = format!("{base}{prefix}");
        let page = Page { objects: Vec::with_capacity(max.min(1000)), prefixes: Vec::new(), truncated: false };
        let mut pager = Pager { prefix, delimiter, after, max, page };
        let batch = (max + 1).clamp(16, 1001);
        let mut from = if after > prefix { format!("{base}{after}\0") } else { scope.clone() };
        'scan: loop {
            let records = self.records.list_from::<Listed>(&scope, &from, batch).await?;
            let count = records.len();
            // Where the next scan resumes if this batch is used up.
            let last = records.last().map(|(name, _)| name.clone());
            for (record, object) in records {
                // Records are `obj/<bucket>/<key>`: the key is the record's name past `base`
                // (cut in place; a listing handles a thousand of them per page).
                let mut key = record;
                let at = if key.is_char_boundary(base.len()) { base.len() } else { key.len() };
                key.drain(..at);
                match pager.offer(key, object) {
                    Step::Next => {}
                    Step::SkipPast(common) => {
                        // U+10FFFF sorts after every key that continues `common`.
                        from = format!("{base}{common}\u{10FFFF}");
                        continue 'scan;
                    }
                    Step::Full => break 'scan,
                }
            }
            match last {
                Some(last) if count == batch => from = format!("{last}\0"),
                _ => break,
            }
        }
        Ok(pager.page)
    }
}

/// Continuation tokens are the last key, hex-encoded (opaque to clients, as S3's are).
fn encode_token(last: &str) -> String {
    last.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Result<String, S3Error> {
    let bad = || S3Error::invalid_argument("the continuation token is not valid");
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    String::from_utf8(bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(keys: &[&str]) -> Vec<(String, Listed)> {
        keys.iter()
            .map(|k| (k.to_string(), Listed { size: 1, etag: String::new(), modified_ms: 0, delete_marker: false }))
            .collect()
    }

    /// A page from `all` (sorted), skipping as a range scan would.
    fn page(all: Vec<(String, Listed)>, prefix: &str, delimiter: &str, after: &str, max: usize) -> Page {
        let page = Page { objects: Vec::new(), prefixes: Vec::new(), truncated: false };
        let mut pager = Pager { prefix, delimiter, after, max, page };
        let mut skip: Option<String> = None;
        for (key, object) in all {
            if skip.as_ref().is_some_and(|s| key.starts_with(s.as_str())) {
                continue;
            }
            match pager.offer(key, object) {
                Step::Next => {}
                Step::SkipPast(common) => skip = Some(common),
                Step::Full => break,
            }
        }
        pager.page
    }

    #[test]
    fn pages_group_prefixes_and_resume() {
        let all = || objects(&["a/1", "a/2", "b", "c/x/1", "c/y", "d"]);
        let p = page(all(), "", "/", "", 1000);
        assert_eq!(p.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["b", "d"]);
        assert_eq!(p.prefixes, ["a/", "c/"]);
        let first = page(all(), "", "/", "", 2);
        assert!(first.truncated);
        assert_eq!((first.prefixes.clone(), first.last()), (vec!["a/".to_string()], Some("b")));
        let second = page(all(), "", "/", first.last().unwrap(), 2);
        assert_eq!((second.prefixes, second.objects.len(), second.truncated), (vec!["c/".to_string()], 1, false));
        let within = page(all(), "c/", "/", "", 1000);
        assert_eq!(within.prefixes, ["c/x/"]);
        assert_eq!(within.objects[0].0, "c/y");
        let mut with_marker = all();
        with_marker[1].1.delete_marker = true;
        let p = page(with_marker, "a/", "", "", 1000);
        assert_eq!(
            p.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a/1"],
            "delete markers are not listed"
        );
        assert_eq!(decode_token(&encode_token("k/é")).unwrap(), "k/é");
        assert!(decode_token("zz").is_err());
    }
}
