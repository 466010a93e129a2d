//! Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload (parts in
//! ascending order, ETags checked, every part but the last at least `s3.min_part_bytes`),
//! AbortMultipartUpload, ListParts, ListMultipartUploads. Parts are stored as durable chunks
//! the moment they arrive; completing only writes the object's record over the parts' chunks,
//! so the object appears whole or not at all. The ETag is S3's: the MD5 of the parts' MD5s,
//! `-<number of parts>`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use md5::{Digest, Md5};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::bucket::xml_response;
use super::error::S3Error;
use super::object::{content_type, hex, kept_headers, version_header, Stored};
use super::policy::Op;
use super::service::{Call, S3};
use super::xml::{self, Xml};
use crate::chunks::ChunkRef;
use crate::meta::Object;
use photon_runtime::time::{iso8601, now_ms};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Upload {
    key: String,
    content_type: String,
    headers: BTreeMap<String, String>,
    initiated_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Part {
    number: u32,
    pub etag: String,
    size: u64,
    chunks: Vec<ChunkRef>,
    pub modified_ms: i64,
}

flaredb_client::json_record!(Upload, Part);

fn upload_key(bucket: &str, id: &str) -> String {
    format!("upload/{bucket}/{id}")
}

fn parts_prefix(id: &str) -> String {
    format!("part/{id}/")
}

fn part_key(id: &str, number: u32) -> String {
    format!("part/{id}/{number:05}")
}

/// The (number, ETag without quotes) of each `<Part>` of a CompleteMultipartUpload body.
fn parse_complete(body: &str) -> Result<Vec<(u32, String)>, S3Error> {
    let doc = xml::parse(body, "CompleteMultipartUpload")?;
    let mut parts = Vec::new();
    for part in xml::children(doc.root_element(), "Part") {
        let number = xml::text(part, "PartNumber")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| S3Error::malformed_xml("a <Part> lacks a numeric <PartNumber>"))?;
        let etag = xml::text(part, "ETag").ok_or_else(|| S3Error::malformed_xml("a <Part> lacks its <ETag>"))?;
        parts.push((number, etag.replace('"', "")));
    }
    if parts.is_empty() {
        return Err(S3Error::malformed_xml("the CompleteMultipartUpload body lists no parts"));
    }
    Ok(parts)
}

impl S3 {
    pub(super) async fn upload(&self, bucket: &str, key: &str, id: &str) -> Result<Upload, S3Error> {
        let valid = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
        let found = if valid { self.records.get::<Upload>(&upload_key(bucket, id)).await? } else { None };
        match found {
            Some(upload) if upload.value.key == key => Ok(upload.value),
            _ => Err(S3Error::no_such_upload(format!("upload {id} does not exist for this key"))),
        }
    }

    pub async fn create_upload(&self, call: &Call) -> Result<Response, S3Error> {
        let (bucket_name, key) = call.object();
        let bucket = self.bucket(bucket_name).await?;
        self.allow(call, &bucket, Op::PUT_OBJECT, Some(key)).await?;
        let mut id = [0u8; 16];
        SystemRandom::new().fill(&mut id).map_err(|_| S3Error::internal_error("no randomness for an upload id"))?;
        let id = hex(&id);
        let upload = Upload {
            key: key.to_string(),
            content_type: content_type(&call.headers),
            headers: kept_headers(&call.headers),
            initiated_ms: now_ms(),
        };
        self.records.create(&upload_key(bucket_name, &id), &upload, || format!("upload {id}")).await?;
        let mut xml = Xml::new("InitiateMultipartUploadResult");
        xml.field("Bucket", bucket_name).field("Key", key).field("UploadId", &id);
        Ok(xml_response(xml.finish("InitiateMultipartUploadResult")))
    }

    pub async fn upload_part(&self, call: &Call, body: Body) -> Result<Response, S3Error> {
        let (bucket_name, key) = call.object();
        let bucket = self.bucket(bucket_name).await?;
        self.allow(call, &bucket, Op::PUT_OBJECT, Some(key)).await?;
        let (id, number) = self.part_target(call).await?;
        // Parts are never inline: their records name chunks only.
        let received = self.receive(call, body, 0).await?;
        let part = self.save_part(&id, number, received).await?;
        Ok((StatusCode::OK, [("etag", format!("\"{}\"", part.etag))]).into_response())
    }

    /// The upload id and part number an UploadPart(Copy) names, both checked.
    pub(super) async fn part_target(&self, call: &Call) -> Result<(String, u32), S3Error> {
        let (bucket_name, key) = call.object();
        let id = call.query.get("uploadId").cloned().unwrap_or_default();
        self.upload(bucket_name, key, &id).await?;
        let number: u32 = call
            .query
            .get("partNumber")
            .and_then(|n| n.parse().ok())
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| S3Error::invalid_argument("partNumber must be an integer from 1 to 10000"))?;
        Ok((id, number))
    }

    /// Records part `number` of upload `id` over its stored chunks (which go if that fails); a
    /// part sent again replaces the earlier one, whose chunks go.
    pub(super) async fn save_part(&self, id: &str, number: u32, stored: Stored) -> Result<Part, S3Error> {
        let part =
            Part { number, etag: hex(&stored.md5), size: stored.size, chunks: stored.chunks, modified_ms: now_ms() };
        let record = part_key(id, number);
        let old = self.records.get::<Part>(&record).await?;
        if let Err(e) = self.records.put_with_ttl(&record, &part, 0).await {
            self.chunks.remove(&part.chunks).await;
            return Err(e.into());
        }
        if let Some(old) = old {
            self.chunks.remove_later(old.value.chunks);
        }
        Ok(part)
    }

    pub async fn complete_upload(&self, call: &Call, body: Body) -> Result<Response, S3Error> {
        let (bucket_name, key) = call.object();
        let bucket = self.bucket(bucket_name).await?;
        self.allow(call, &bucket, Op::PUT_OBJECT, Some(key)).await?;
        let id = call.query.get("uploadId").cloned().unwrap_or_default();
        let upload = self.upload(bucket_name, key, &id).await?;
        let wanted = parse_complete(&xml::body_text(body, "CompleteMultipartUpload").await?)?;
        if wanted.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(S3Error::invalid_part_order("the parts must be listed in ascending order"));
        }
        let stored: BTreeMap<u32, Part> =
            self.records.list::<Part>(&parts_prefix(&id)).await?.into_iter().map(|(_, p)| (p.number, p)).collect();
        let mut chosen = Vec::new();
        for (i, (number, etag)) in wanted.iter().enumerate() {
            let part = stored
                .get(number)
                .filter(|p| &p.etag == etag)
                .ok_or_else(|| S3Error::invalid_part(format!("part {number} was not uploaded, or its ETag differs")))?;
            if i + 1 < wanted.len() && part.size < self.config.min_part_bytes {
                return Err(S3Error::entity_too_small(format!(
                    "part {number} is {} bytes; every part but the last must be at least {} bytes",
                    part.size, self.config.min_part_bytes
                )));
            }
            chosen.push(part.clone());
        }
        let mut digest = Md5::new();
        for part in &chosen {
            let raw: Vec<u8> = (0..part.etag.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(&part.etag[i..i + 2], 16).ok())
                .collect();
            digest.update(raw);
        }
        let etag = format!("{}-{}", hex(&digest.finalize()), chosen.len());
        let mut object = Object {
            key: key.to_string(),
            size: chosen.iter().map(|p| p.size).sum(),
            etag: etag.clone(),
            content_type: upload.content_type,
            headers: upload.headers,
            modified_ms: now_ms(),
            chunks: chosen.iter().flat_map(|p| p.chunks.clone()).collect(),
            inline: None,
            version_id: String::new(),
            delete_marker: false,
        };
        // The object's record takes the chosen parts' chunks (on failure the parts keep them);
        // the upload's records go, and the chunks of parts not chosen with them.
        self.publish(&bucket, &mut object).await?;
        for (number, part) in &stored {
            if !wanted.iter().any(|(n, _)| n == number) {
                self.chunks.remove_later(part.chunks.clone());
            }
            self.records.delete(&part_key(&id, *number)).await?;
        }
        self.records.delete(&upload_key(bucket_name, &id)).await?;
        let mut xml = Xml::new("CompleteMultipartUploadResult");
        xml.field("Location", format!("/{bucket_name}/{key}"))
            .field("Bucket", bucket_name)
            .field("Key", key)
            .field("ETag", format!("\"{etag}\""));
        let mut response = xml_response(xml.finish("CompleteMultipartUploadResult"));
        version_header(&mut response, &bucket, &object.version_id);
        Ok(response)
    }

    pub async fn abort_upload(&self, call: &Call) -> Result<Response, S3Error> {
        let (bucket_name, key) = call.object();
        let bucket = self.bucket(bucket_name).await?;
        self.allow(call, &bucket, Op::ABORT_UPLOAD, Some(key)).await?;
        let id = call.query.get("uploadId").cloned().unwrap_or_default();
        self.upload(bucket_name, key, &id).await?;
        self.discard(bucket_name, &id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }

    /// Discards every upload in progress in `bucket` (its parts' chunks and records), as a
    /// deleted bucket's uploads go with it.
    pub(super) async fn abort_all(&self, bucket: &str) -> Result<(), S3Error> {
        for (record, _) in self.records.list::<Upload>(&format!("upload/{bucket}/")).await? {
            let id = record.rsplit('/').next().unwrap_or_default().to_string();
            self.discard(bucket, &id).await?;
        }
        Ok(())
    }

    /// Removes upload `id`: its parts' chunks and records, then its own record.
    async fn discard(&self, bucket: &str, id: &str) -> Result<(), S3Error> {
        for (record, part) in self.records.list::<Part>(&parts_prefix(id)).await? {
            self.records.delete(&record).await?;
            self.chunks.remove_later(part.chunks);
        }
        self.records.delete(&upload_key(bucket, id)).await?;
        Ok(())
    }

    pub async fn list_parts(&self, call: &Call) -> Result<Response, S3Error> {
        let (bucket_name, key) = call.object();
        let bucket = self.bucket_for_read(bucket_name).await?;
        self.allow(call, &bucket, Op::LIST_PARTS, Some(key)).await?;
        let id = call.query.get("uploadId").cloned().unwrap_or_default();
        self.upload(bucket_name, key, &id).await?;
        let mut xml = Xml::new("ListPartsResult");
        xml.field("Bucket", bucket_name).field("Key", key).field("UploadId", &id).field("IsTruncated", false);
        for (_, part) in self.records.list::<Part>(&parts_prefix(&id)).await? {
            xml.open("Part")
                .field("PartNumber", part.number)
                .field("LastModified", iso8601(part.modified_ms))
                .field("ETag", format!("\"{}\"", part.etag))
                .field("Size", part.size)
                .close("Part");
        }
        Ok(xml_response(xml.finish("ListPartsResult")))
    }

    pub async fn list_uploads(&self, call: &Call) -> Result<Response, S3Error> {
        let (bucket_name, _) = call.object();
        let bucket = self.bucket_for_read(bucket_name).await?;
        self.allow(call, &bucket, Op::LIST_UPLOADS, None).await?;
        let mut xml = Xml::new("ListMultipartUploadsResult");
        xml.field("Bucket", bucket_name).field("IsTruncated", false);
        for (record, upload) in self.records.list::<Upload>(&format!("upload/{bucket_name}/")).await? {
            let id = record.rsplit('/').next().unwrap_or_default();
            xml.open("Upload")
                .field("Key", &upload.key)
                .field("UploadId", id)
                .field("Initiated", iso8601(upload.initiated_ms))
                .close("Upload");
        }
        Ok(xml_response(xml.finish("ListMultipartUploadsResult")))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_complete;

    #[test]
    fn complete_bodies_parse() {
        let body = r#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>"abc"</ETag><PartNumber>1</PartNumber></Part><Part><PartNumber>2</PartNumber><ETag>&quot;def&quot;</ETag></Part></CompleteMultipartUpload>"#;
        assert_eq!(parse_complete(body).unwrap(), vec![(1, "abc".to_string()), (2, "def".to_string())]);
        for bad in [
            "",
            "<x/>",
            "<CompleteMultipartUpload></CompleteMultipartUpload>",
            "<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part>",
        ] {
            assert_eq!(parse_complete(bad).unwrap_err().code, "MalformedXML", "{bad}");
        }
    }
}
