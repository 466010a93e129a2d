//! Server-side copies: CopyObject (the metadata directive `COPY` or `REPLACE`) and
//! UploadPartCopy (a byte range of the source). The source is read chunk by chunk, each chunk
//! verified, and written as new durable chunks, so a copy never shares data with its source and
//! memory stays at one chunk whatever the size.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::address::{decode, validate_bucket, validate_key, Target};
use super::bucket::xml_response;
use super::error::S3Error;
use super::object::{content_type, hex, kept_headers, preconditions, range, version_header};
use super::policy::Op;
use super::service::{Call, S3};
use super::xml::Xml;
use crate::meta::{Bucket, Object, Versioning};
use photon_runtime::time::{iso8601, now_ms};

/// The source an `x-amz-copy-source` names: `[/]<bucket>/<key>[?versionId=<id>]`, URL-encoded.
fn copy_source(text: &str) -> Result<(String, String, Option<String>), S3Error> {
    let (path, query) = match text.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (text, None),
    };
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = path
        .split_once('/')
        .ok_or_else(|| S3Error::invalid_argument("x-amz-copy-source must be <bucket>/<key>[?versionId=<id>]"))?;
    let (bucket, key) = (decode(bucket)?, decode(key)?);
    validate_bucket(&bucket)?;
    validate_key(&key)?;
    let version = match query {
        None => None,
        Some(query) => Some(
            query
                .strip_prefix("versionId=")
                .ok_or_else(|| S3Error::invalid_argument("x-amz-copy-source may only carry ?versionId=<id>"))?
                .to_string(),
        ),
    };
    Ok((bucket, key, version))
}

impl S3 {
    /// The copy's source object, once the caller may read it and its conditions hold.
    async fn source(&self, call: &Call) -> Result<(Bucket, Object), S3Error> {
        let (bucket, key, version) = copy_source(call.header("x-amz-copy-source").unwrap_or_default())?;
        let bucket = self.bucket_for_read(&bucket).await?;
        let op = if version.is_some() { Op::GET_OBJECT_VERSION } else { Op::GET_OBJECT };
        self.allow(call, &bucket, op, Some(&key)).await?;
        let object = self.find(&bucket, &key, version.as_deref()).await?;
        if !preconditions(&call.headers, "x-amz-copy-source-", &object)? {
            return Err(S3Error::precondition_failed("the copy source was not modified (x-amz-copy-source-if-*)"));
        }
        Ok((bucket, object))
    }

    pub async fn copy_object(&self, call: &Call) -> Result<Response, S3Error> {
        let Target::Object { bucket: name, key } = &call.target else {
            return Err(S3Error::invalid_request("a copy needs a destination key"));
        };
        let bucket = self.bucket(name).await?;
        self.allow(call, &bucket, Op::PUT_OBJECT, Some(key)).await?;
        let (source_bucket, source) = self.source(call).await?;
        let replace = match call.header("x-amz-metadata-directive").unwrap_or("COPY") {
            "COPY" => false,
            "REPLACE" => true,
            other => return Err(S3Error::invalid_argument(format!("unknown x-amz-metadata-directive {other:?}"))),
        };
        let onto_itself = source_bucket.name == bucket.name && source.key == *key;
        if onto_itself && !replace && !call.header("x-amz-copy-source").unwrap_or_default().contains("versionId=") {
            return Err(S3Error::invalid_request(
                "This copy request is illegal because it is trying to copy an object to itself without changing the \
                 object's metadata.",
            ));
        }
        if source.size > self.config.max_object_bytes {
            return Err(S3Error::invalid_request(format!(
                "the copy source is {} bytes, over the limit of {} for a copy (use UploadPartCopy)",
                source.size, self.config.max_object_bytes
            )));
        }
        let source_data = self.data_stream(&source, 0, source.size.saturating_sub(1));
        let stored = self.store(source_data, false, self.inline_bytes).await?;
        let (content_type, headers) = if replace {
            (content_type(&call.headers), kept_headers(&call.headers))
        } else {
            (source.content_type.clone(), source.headers.clone())
        };
        let object = Object {
            key: key.clone(),
            size: stored.size,
            etag: hex(&stored.md5),
            content_type,
            headers,
            modified_ms: now_ms(),
            chunks: stored.chunks,
            inline: stored.inline,
            version_id: String::new(),
            delete_marker: false,
        };
        let object = self.publish_new(&bucket, object).await?;
        let mut xml = Xml::new("CopyObjectResult");
        xml.field("LastModified", iso8601(object.modified_ms)).field("ETag", format!("\"{}\"", object.etag));
        let mut response = xml_response(xml.finish("CopyObjectResult"));
        version_header(&mut response, &bucket, &object.version_id);
        if source_bucket.versioning != Versioning::Unversioned {
            if let Ok(value) = axum::http::HeaderValue::from_str(&source.version_id) {
                response.headers_mut().insert("x-amz-copy-source-version-id", value);
            }
        }
        Ok(response)
    }

    pub async fn upload_part_copy(&self, call: &Call) -> Result<Response, S3Error> {
        let Target::Object { bucket: name, key } = &call.target else {
            return Err(S3Error::invalid_request("a part copy needs a destination key"));
        };
        let bucket = self.bucket(name).await?;
        self.allow(call, &bucket, Op::PUT_OBJECT, Some(key)).await?;
        let (id, number) = self.part_target(call).await?;
        let (_, source) = self.source(call).await?;
        let (start, end) = match call.header("x-amz-copy-source-range") {
            Some(text) => range(text, source.size)?,
            None => (0, source.size.saturating_sub(1)),
        };
        let length = if source.size == 0 { 0 } else { end - start + 1 };
        if length > self.config.max_object_bytes {
            return Err(S3Error::invalid_request(format!(
                "the part is {length} bytes, over the limit of {} bytes",
                self.config.max_object_bytes
            )));
        }
        // Parts are never inline: their records name chunks only.
        let stored = self.store(self.data_stream(&source, start, end), false, 0).await?;
        let part = self.save_part(&id, number, stored).await?;
        let mut xml = Xml::new("CopyPartResult");
        xml.field("LastModified", iso8601(part.modified_ms)).field("ETag", format!("\"{}\"", part.etag));
        Ok((StatusCode::OK, xml_response(xml.finish("CopyPartResult"))).into_response())
    }
}

#[cfg(test)]
mod tests {
    use super::copy_source;

    #[test]
    fn copy_sources_parse() {
        assert_eq!(copy_source("/photos/a%20b.jpg").unwrap(), ("photos".into(), "a b.jpg".into(), None));
        assert_eq!(copy_source("photos/k?versionId=null").unwrap(), ("photos".into(), "k".into(), Some("null".into())));
        for bad in ["", "photos", "/photos/", "Bad_Bucket/k", "photos/k?acl"] {
            assert!(copy_source(bad).is_err(), "{bad}");
        }
    }
}
