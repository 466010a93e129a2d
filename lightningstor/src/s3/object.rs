//! Object operations: PutObject (streamed into chunks; Content-MD5 and signed payload hashes
//! checked before the object becomes visible), GetObject and HeadObject (a version, Range and
//! the conditional headers), DeleteObject (a delete marker or a version, as versioning says).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use photon_auth::sigv4::signing_key;
use photon_auth::sigv4_stream::{decode, Chunks};

use super::digest::{self, Digested};
use super::error::S3Error;
use super::policy::Op;
use super::service::{Call, S3};
use crate::chunks::{ChunkError, ChunkRef};
use crate::meta::{Bucket, Object, Versioning};
use photon_runtime::time::{http_date, now_ms, parse_http_date};

/// Headers stored with an object and answered back.
const KEPT: [&str; 5] = ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A body that went past the size limit while streaming (its declared length said less).
#[derive(Debug, thiserror::Error)]
#[error("the body is over the single-upload limit of {0} bytes")]
struct OverLimit(u64);

impl From<ChunkError> for S3Error {
    fn from(e: ChunkError) -> Self {
        use photon_auth::sigv4::SigV4Error;
        match e {
            ChunkError::Source(e) => {
                let inner = e.get_ref();
                if let Some(over) = inner.and_then(|i| i.downcast_ref::<OverLimit>()) {
                    return S3Error::entity_too_large(over.to_string());
                }
                match inner.and_then(|i| i.downcast_ref::<SigV4Error>()) {
                    Some(SigV4Error::Malformed(why)) => {
                        S3Error::incomplete_body(format!("the aws-chunked body is malformed: {why}"))
                    }
                    Some(sig) => sig.clone().into(),
                    None => S3Error::incomplete_body(format!("the request body ended or failed: {e}")),
                }
            }
            other => S3Error::internal_error(other.to_string()),
        }
    }
}

/// A byte range of an object of `size` bytes: `bytes=a-b`, `bytes=a-`, `bytes=-n`.
pub(super) fn range(text: &str, size: u64) -> Result<(u64, u64), S3Error> {
    let invalid = || S3Error::invalid_range(format!("the range {text:?} is not satisfiable for {size} bytes"));
    let spec = text.strip_prefix("bytes=").ok_or_else(invalid)?;
    if spec.contains(',') {
        return Err(S3Error::not_implemented("multiple ranges are not supported"));
    }
    let (a, b) = spec.split_once('-').ok_or_else(invalid)?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| invalid())?;
            (size.saturating_sub(n), size.checked_sub(1).ok_or_else(invalid)?)
        }
        (a, "") => (a.parse().map_err(|_| invalid())?, size.checked_sub(1).ok_or_else(invalid)?),
        (a, b) => {
            (a.parse().map_err(|_| invalid())?, b.parse::<u64>().map_err(|_| invalid())?.min(size.saturating_sub(1)))
        }
    };
    if start > end || start >= size {
        return Err(invalid());
    }
    Ok((start, end))
}

/// How many chunks past the one being read a GET asks the disk for in advance.
const PREFETCH: usize = 2;

impl S3 {
    pub async fn put_object(&self, call: &Call, body: Body) -> Result<Response, S3Error> {
        let (bucket_name, key) = call.object();
        let bucket = self.bucket(bucket_name).await?;
        self.allow(call, &bucket, Op::PUT_OBJECT, Some(key)).await?;
        let received = self.receive(call, body, self.inline_bytes).await?;
        let object = Object {
            key: key.to_string(),
            size: received.size,
            etag: hex(&received.md5),
            content_type: content_type(&call.headers),
            headers: kept_headers(&call.headers),
            modified_ms: now_ms(),
            chunks: received.chunks,
            inline: received.inline,
            version_id: String::new(),
            delete_marker: false,
        };
        let object = self.publish_new(&bucket, object).await?;
        let mut response = (StatusCode::OK, [("etag", format!("\"{}\"", object.etag))]).into_response();
        version_header(&mut response, &bucket, &object.version_id);
        Ok(response)
    }

    /// `publish`es an object whose chunks were just written; they go again if it fails.
    pub(super) async fn publish_new(&self, bucket: &Bucket, mut object: Object) -> Result<Object, S3Error> {
        match self.publish(bucket, &mut object).await {
            Ok(()) => Ok(object),
            Err(e) => {
                self.chunks.remove(&object.chunks).await;
                Err(e)
            }
        }
    }

    /// Stores a request body as durable chunks (or keeps it, when at most `inline` bytes):
    /// decoded as its signature mode says, checked against the size limit, Content-MD5 and a
    /// signed payload hash; nothing stays on failure.
    pub(super) async fn receive(&self, call: &Call, body: Body, inline: usize) -> Result<Stored, S3Error> {
        let declared = call.header("x-amz-decoded-content-length").or_else(|| call.header("content-length"));
        if let Some(length) = declared.and_then(|l| l.parse::<u64>().ok()) {
            if length > self.config.max_object_bytes {
                return Err(S3Error::entity_too_large(format!(
                    "{length} bytes is over the single-upload limit of {} bytes",
                    self.config.max_object_bytes
                )));
            }
        }
        let content_md5 = match call.header("content-md5") {
            Some(b64) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .ok()
                    .filter(|d| d.len() == 16)
                    .ok_or_else(|| S3Error::invalid_digest("Content-MD5 is not the base64 of 16 bytes"))?,
            ),
            None => None,
        };
        let payload = call.header("x-amz-content-sha256").unwrap_or("UNSIGNED-PAYLOAD").to_string();
        let raw = body.into_data_stream().map(|piece| piece.map_err(std::io::Error::other));
        let body: std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>> = match payload.as_str() {
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" | "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER" => {
                let (secret, credential) = call
                    .signer
                    .as_ref()
                    .ok_or_else(|| S3Error::access_denied("only a SigV4-signed request can carry signed chunks"))?;
                let chunks =
                    Chunks::Signed { signing_key: signing_key(secret, credential), credential: credential.clone() };
                Box::pin(decode(raw, chunks))
            }
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => Box::pin(decode(raw, Chunks::Unsigned)),
            _ => Box::pin(raw),
        };
        let limit = self.config.max_object_bytes;
        // Stop reading the moment the body passes the limit, whatever its headers declared.
        let mut seen = 0u64;
        let body = body.map(move |piece| {
            let piece = piece?;
            seen += piece.len() as u64;
            if seen > limit {
                return Err(std::io::Error::other(OverLimit(limit)));
            }
            Ok(piece)
        });
        let Stored { chunks, inline, size, md5, sha256 } = self.store(body, payload.len() == 64, inline).await?;
        let problem = if size > limit {
            Some(S3Error::entity_too_large(format!("{size} bytes is over the single-upload limit of {limit} bytes")))
        } else if content_md5.as_deref().is_some_and(|expected| expected != md5.as_slice()) {
            Some(S3Error::bad_digest("the Content-MD5 you specified did not match what we received"))
        } else if payload.len() == 64 && payload != hex(&sha256) {
            Some(S3Error::x_amz_content_sha256_mismatch("the provided x-amz-content-sha256 does not match the body"))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.chunks.remove(&chunks).await;
            return Err(problem);
        }
        Ok(Stored { chunks, inline, size, md5, sha256 })
    }

    /// Writes `body` as durable chunks, measuring it on the way (a few chunks in memory); the
    /// whole body's SHA-256 only when `sha256` asks (a signed payload hash to check). A body of
    /// at most `inline` bytes is not written but answered as `Stored::inline`, for its record.
    pub(super) async fn store(
        &self,
        body: impl Stream<Item = std::io::Result<Bytes>> + Send,
        sha256: bool,
        inline: usize,
    ) -> Result<Stored, S3Error> {
        let mut body = std::pin::pin!(body);
        // The first pieces are held until the body ends (it is kept inline) or passes `inline`
        // (it goes to chunks, these pieces first).
        let mut held = Vec::new();
        let mut held_bytes = 0;
        if inline > 0 {
            while held_bytes <= inline {
                match body.next().await {
                    Some(Ok(piece)) => {
                        held_bytes += piece.len();
                        held.push(piece);
                    }
                    Some(Err(e)) => return Err(ChunkError::Source(e).into()),
                    None => {
                        let data = match held.len() {
                            1 => held.swap_remove(0),
                            _ => held.concat().into(),
                        };
                        let Digested { size, md5, sha256 } = digest::of(&data, sha256);
                        return Ok(Stored { chunks: Vec::new(), size, inline: Some(data), md5, sha256 });
                    }
                }
            }
        }
        let digest = self.digests.body(sha256);
        let fed = &digest;
        let body = futures_util::stream::iter(held.into_iter().map(Ok)).chain(body).then(move |piece| async move {
            let piece = piece?;
            fed.feed(&piece).await?;
            Ok(piece)
        });
        let chunks = self.chunks.write_stream(body).await?;
        let Digested { size, md5, sha256 } = match digest.finish().await {
            Ok(digested) => digested,
            Err(e) => {
                self.chunks.remove(&chunks).await;
                return Err(e);
            }
        };
        Ok(Stored { chunks, inline: None, size, md5, sha256 })
    }

    pub async fn get_object(&self, call: &Call, head_only: bool) -> Result<Response, S3Error> {
        let (bucket_name, key) = call.object();
        let bucket = self.bucket_for_read(bucket_name).await?;
        let version = call.query.get("versionId").map(String::as_str);
        let op = if version.is_some() { Op::GET_OBJECT_VERSION } else { Op::GET_OBJECT };
        self.allow(call, &bucket, op, Some(key)).await?;
        let object = self.find(&bucket, key, version).await?;
        let etag = format!("\"{}\"", object.etag);
        if !preconditions(&call.headers, "", &object)? {
            return Ok((StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response());
        }
        let (start, end, status) = match call.header("range") {
            Some(text) => {
                let (start, end) = range(text, object.size)?;
                (start, end, StatusCode::PARTIAL_CONTENT)
            }
            None => (0, object.size.saturating_sub(1), StatusCode::OK),
        };
        let length = if object.size == 0 { 0 } else { end - start + 1 };
        let mut response = Response::builder()
            .status(status)
            .header("etag", &etag)
            .header("last-modified", http_date(object.modified_ms))
            .header("content-type", &object.content_type)
            .header("content-length", length)
            .header("accept-ranges", "bytes");
        if status == StatusCode::PARTIAL_CONTENT {
            response = response.header("content-range", format!("bytes {start}-{end}/{}", object.size));
        }
        for (name, value) in &object.headers {
            response = response.header(name, value);
        }
        if bucket.versioning != Versioning::Unversioned {
            response = response.header("x-amz-version-id", &object.version_id);
        }
        let body = if head_only || length == 0 {
            Body::empty()
        } else {
            Body::from_stream(self.data_stream(&object, start, end))
        };
        response.body(body).map_err(|e| S3Error::internal_error(e.to_string()))
    }

    /// The bytes `start..=end` of `object` (`range`), from its record or its chunks.
    pub(super) fn data_stream(
        &self,
        object: &Object,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        match &object.inline {
            Some(data) => {
                // An empty object has no byte to slice.
                let piece = (!data.is_empty()).then(|| data.slice(start as usize..=end as usize));
                futures_util::stream::iter(piece.map(Ok)).left_stream()
            }
            None => self.byte_stream(object.chunks.clone(), start, end).right_stream(),
        }
    }

    /// The bytes `start..=end` of an object made of `chunks`, read chunk by chunk (each
    /// verified) as the consumer takes them.
    pub(super) fn byte_stream(
        &self,
        chunks: Vec<ChunkRef>,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        let store = self.chunks.clone();
        let mut offset = 0u64;
        let pieces: Vec<_> = chunks
            .into_iter()
            .filter_map(|chunk| {
                let (from, to) = (offset, offset + chunk.len);
                offset = to;
                (to > start && from <= end).then(|| {
                    let skip = start.saturating_sub(from) as usize;
                    let take = (end.min(to - 1) - from + 1) as usize;
                    (chunk, skip, take)
                })
            })
            .collect();
        // The next chunk is read (and verified) while this one is sent, and the disk is asked
        // for the one after (into the page cache, no memory of ours) so it never waits for us.
        let upcoming: Vec<ChunkRef> = pieces.iter().map(|(chunk, _, _)| chunk.clone()).collect();
        futures_util::stream::iter(pieces.into_iter().enumerate())
            .map(move |(i, (chunk, skip, take))| {
                let store = store.clone();
                if let Some(ahead) = upcoming.get(i + PREFETCH) {
                    store.prefetch(ahead);
                }
                async move {
                    let bytes = store.get(&chunk).await.map_err(|e| {
                        tracing::error!(chunk = %chunk.id, error = %e, "an object's chunk cannot be served");
                        std::io::Error::other(e.to_string())
                    })?;
                    Ok::<_, std::io::Error>(bytes.slice(skip..take))
                }
            })
            .buffered(2)
    }

    pub async fn delete_object(&self, call: &Call) -> Result<Response, S3Error> {
        let (bucket_name, key) = call.object();
        // The bucket as read at most a second ago (see `bucket_for_read`): a versioning change
        // made on another node reaches this node's deletes within that second, as S3's own
        // versioning changes take a while to propagate.
        let bucket = self.bucket_for_read(bucket_name).await?;
        let version = call.query.get("versionId").map(String::as_str);
        let op = if version.is_some() { Op::DELETE_OBJECT_VERSION } else { Op::DELETE_OBJECT };
        self.allow(call, &bucket, op, Some(key)).await?;
        let removed = self.remove(&bucket, key, version).await?;
        let mut response = StatusCode::NO_CONTENT.into_response();
        if let Some(id) = &removed.version_id {
            version_header(&mut response, &bucket, id);
        }
        if removed.delete_marker {
            response.headers_mut().insert("x-amz-delete-marker", axum::http::HeaderValue::from_static("true"));
        }
        Ok(response)
    }
}

/// Checks the conditional headers (`if-match`, `if-unmodified-since`: PreconditionFailed) and
/// answers whether `if-none-match` / `if-modified-since` still want the object (`false`: not
/// modified). `prefix` is empty for a GET and `x-amz-copy-source-` for a copy's source.
pub(super) fn preconditions(headers: &HeaderMap, prefix: &str, object: &Object) -> Result<bool, S3Error> {
    let get = |name: &str| header(headers, &format!("{prefix}{name}")).map(str::to_string);
    let etag = format!("\"{}\"", object.etag);
    let modified = object.modified_ms / 1000 * 1000;
    if let Some(wanted) = get("if-match") {
        if wanted != "*" && !wanted.split(',').any(|t| t.trim() == etag || t.trim() == object.etag) {
            return Err(S3Error::precondition_failed("If-Match does not match the object's ETag"));
        }
    } else if let Some(since) = get("if-unmodified-since").as_deref().and_then(parse_http_date) {
        if modified > since {
            return Err(S3Error::precondition_failed("the object was modified after If-Unmodified-Since"));
        }
    }
    let not_modified = match get("if-none-match") {
        Some(tags) => tags == "*" || tags.split(',').any(|t| t.trim() == etag || t.trim() == object.etag),
        None => get("if-modified-since").as_deref().and_then(parse_http_date).is_some_and(|since| modified <= since),
    };
    Ok(!not_modified)
}

/// `x-amz-version-id` on a response about a versioned bucket's object.
pub(super) fn version_header(response: &mut Response, bucket: &Bucket, version_id: &str) {
    if bucket.versioning != Versioning::Unversioned || version_id != crate::meta::NULL_VERSION {
        if let Ok(value) = axum::http::HeaderValue::from_str(version_id) {
            response.headers_mut().insert("x-amz-version-id", value);
        }
    }
}

/// Bytes written as chunks, with their size and digests.
pub(super) struct Stored {
    pub chunks: Vec<ChunkRef>,
    /// The bytes themselves, when they were few enough to keep in the record (no chunks).
    pub inline: Option<Bytes>,
    pub size: u64,
    pub md5: [u8; 16],
    pub sha256: [u8; 32],
}

/// The headers kept with an object: `x-amz-meta-*` and the cache headers.
pub(super) fn kept_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-amz-meta-") || KEPT.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
        .collect()
}

pub(super) fn content_type(headers: &HeaderMap) -> String {
    header(headers, "content-type").unwrap_or("binary/octet-stream").to_string()
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges_follow_http() {
        assert_eq!(range("bytes=0-9", 100).unwrap(), (0, 9));
        assert_eq!(range("bytes=90-", 100).unwrap(), (90, 99));
        assert_eq!(range("bytes=-10", 100).unwrap(), (90, 99));
        assert_eq!(range("bytes=95-200", 100).unwrap(), (95, 99));
        for bad in ["bytes=100-", "bytes=5-1", "items=0-1", "bytes=x-1"] {
            assert_eq!(range(bad, 100).unwrap_err().code, "InvalidRange", "{bad}");
        }
    }
}
