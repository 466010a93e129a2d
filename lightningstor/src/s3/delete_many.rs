//! DeleteObjects: up to 1000 keys (or versions) in one request, each deleted as DeleteObject
//! would and answered on its own, `Deleted` or `Error` (quiet mode: errors only).

use axum::body::Body;
use axum::response::Response;
use base64::Engine;
use md5::{Digest, Md5};

use super::address::{validate_key, Target};
use super::bucket::xml_response;
use super::error::S3Error;
use super::policy::Op;
use super::service::{Call, S3};
use super::xml::{self, Xml};

/// S3's limit on keys per DeleteObjects request.
const MAX_KEYS: usize = 1000;

/// A key to delete and, perhaps, which version.
type Doomed = (String, Option<String>);

/// The keys and quiet flag of a `<Delete>` body.
fn parse_delete(text: &str) -> Result<(Vec<Doomed>, bool), S3Error> {
    let doc = xml::parse(text, "Delete")?;
    let root = doc.root_element();
    let quiet = xml::text(root, "Quiet").is_some_and(|q| q.eq_ignore_ascii_case("true"));
    let mut objects = Vec::new();
    for object in xml::children(root, "Object") {
        let key = xml::children(object, "Key")
            .next()
            .and_then(|k| k.text().map(str::to_string))
            .ok_or_else(|| S3Error::malformed_xml("an <Object> has no <Key>"))?;
        objects.push((key, xml::text(object, "VersionId").filter(|v| !v.is_empty())));
    }
    if objects.is_empty() {
        return Err(S3Error::malformed_xml("the Delete body names no <Object>"));
    }
    if objects.len() > MAX_KEYS {
        return Err(S3Error::malformed_xml(format!("at most {MAX_KEYS} objects per request, not {}", objects.len())));
    }
    Ok((objects, quiet))
}

impl S3 {
    pub async fn delete_objects(&self, call: &Call, body: Body) -> Result<Response, S3Error> {
        let Target::Bucket(name) = &call.target else { return Err(S3Error::invalid_request("no bucket")) };
        let bucket = self.bucket(name).await?;
        let text = xml::body_text(body, "Delete").await?;
        if let Some(expected) = call.headers.get("content-md5").and_then(|v| v.to_str().ok()) {
            let actual = base64::engine::general_purpose::STANDARD.encode(Md5::digest(text.as_bytes()));
            if actual != expected {
                return Err(S3Error::bad_digest("the Content-MD5 you specified did not match what we received"));
            }
        }
        let (objects, quiet) = parse_delete(&text)?;
        let mut xml = Xml::new("DeleteResult");
        for (key, version) in objects {
            let op = if version.is_some() { Op::DELETE_OBJECT_VERSION } else { Op::DELETE_OBJECT };
            let outcome = match validate_key(&key) {
                Ok(()) => match self.allow(call, &bucket, op, Some(&key)).await {
                    Ok(()) => self.remove(&bucket, &key, version.as_deref()).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(removed) => {
                    if quiet {
                        continue;
                    }
                    xml.open("Deleted").field("Key", &key);
                    if let Some(version) = &version {
                        xml.field("VersionId", version);
                    }
                    if removed.delete_marker {
                        xml.field("DeleteMarker", true);
                        if version.is_none() {
                            if let Some(id) = &removed.version_id {
                                xml.field("DeleteMarkerVersionId", id);
                            }
                        }
                    }
                    xml.close("Deleted");
                }
                Err(e) => {
                    xml.open("Error").field("Key", &key);
                    if let Some(version) = &version {
                        xml.field("VersionId", version);
                    }
                    xml.field("Code", e.code).field("Message", &e.message).close("Error");
                }
            }
        }
        tracing::debug!(bucket = %bucket.name, "deleted objects in a batch");
        Ok(xml_response(xml.finish("DeleteResult")))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_delete;

    #[test]
    fn delete_bodies_parse() {
        let body = "<Delete><Quiet>true</Quiet><Object><Key>a &amp; b</Key></Object>\
                    <Object><Key>c</Key><VersionId>null</VersionId></Object></Delete>";
        let (objects, quiet) = parse_delete(body).unwrap();
        assert!(quiet);
        assert_eq!(objects, vec![("a & b".to_string(), None), ("c".to_string(), Some("null".to_string()))]);
        let many = format!("<Delete>{}</Delete>", "<Object><Key>k</Key></Object>".repeat(1001));
        for bad in ["<Delete></Delete>", "<Delete><Object></Object></Delete>", many.as_str(), "<Delete"] {
            assert_eq!(parse_delete(bad).unwrap_err().code, "MalformedXML");
        }
    }
}
