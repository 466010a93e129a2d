//! AWS Signature Version 2 (HMAC-SHA1), which S3 tools still send: boto3's and s3cmd's default
//! presigned URLs (`AWSAccessKeyId`, `Expires`, `Signature` in the query) and `Authorization:
//! AWS <key>:<signature>` headers. Verified against the same IAM access keys as SigV4.
//!
//! The string to sign is S3's: the method, Content-MD5, Content-Type, the date (`Expires` for a
//! presigned URL; empty when `x-amz-date` is sent), the `x-amz-*` headers, and the resource:
//! `/<bucket>` for virtual-host requests, then the path as sent, then the subresources that
//! count (sorted, values decoded).

use std::collections::HashMap;

use axum::http::HeaderMap;
use base64::Engine;
use ring::hmac;

use crate::sigv4::{decode, query_pairs, AccessKey, AccessKeys, SigV4Error, Signed, MAX_SKEW};

/// Query parameters that belong to the signed resource (botocore's and S3's list).
const SUBRESOURCES: [&str; 31] = [
    "accelerate",
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
    "object-lock",
    "storageClass",
];

/// A SigV2 signature a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2 {
    pub access_key: String,
    /// Base64 of the HMAC-SHA1.
    pub signature: String,
    /// A presigned URL's expiry (Unix seconds); `None` for a header signature.
    pub expires: Option<i64>,
}

/// The SigV2 signature of a request, if it carries one.
pub fn parse(headers: &HeaderMap, query: &str) -> Option<Result<V2, SigV4Error>> {
    if let Some(authorization) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let rest = authorization.strip_prefix("AWS ")?;
        let parsed = rest
            .split_once(':')
            .map(|(key, signature)| V2 { access_key: key.to_string(), signature: signature.to_string(), expires: None })
            .ok_or_else(|| SigV4Error::Malformed("the Authorization header is not AWS <key>:<signature>".into()));
        return Some(parsed);
    }
    let params: HashMap<String, String> = query_pairs(query).into_iter().collect();
    let key = params.get("AWSAccessKeyId")?;
    let parsed = (|| {
        let signature = params.get("Signature").ok_or_else(|| SigV4Error::Malformed("no Signature".into()))?;
        let expires = params
            .get("Expires")
            .and_then(|e| e.parse::<i64>().ok())
            .ok_or_else(|| SigV4Error::Malformed("Expires is missing or not a number".into()))?;
        Ok(V2 { access_key: key.clone(), signature: signature.clone(), expires: Some(expires) })
    })();
    Some(parsed)
}

/// S3's SigV2 string to sign; `virtual_bucket` is the bucket a virtual-host request names.
pub fn string_to_sign(request: &Signed, date: &str, virtual_bucket: Option<&str>) -> String {
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().trim();
    let mut amz: Vec<(String, String)> = Vec::new();
    for name in request.headers.keys() {
        let lower = name.as_str().to_ascii_lowercase();
        if lower.starts_with("x-amz-") {
            let values: Vec<String> = request
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            amz.push((lower, values.join(",")));
        }
    }
    amz.sort();
    amz.dedup();
    let mut text = format!("{}\n{}\n{}\n{}\n", request.method, header("content-md5"), header("content-type"), date);
    for (name, value) in amz {
        text.push_str(&format!("{name}:{value}\n"));
    }
    if let Some(bucket) = virtual_bucket {
        text.push('/');
        text.push_str(bucket);
    }
    text.push_str(request.path);
    let mut subresources: Vec<(String, String)> = request
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').map(|(k, v)| (k.to_string(), Some(v))).unwrap_or((p.to_string(), None)))
        .filter(|(k, _)| SUBRESOURCES.contains(&k.as_str()))
        .map(|(k, v)| match v {
            Some(v) => (k, format!("={}", decode(v))),
            None => (k, String::new()),
        })
        .collect();
    subresources.sort();
    if !subresources.is_empty() {
        let joined: Vec<String> = subresources.into_iter().map(|(k, v)| format!("{k}{v}")).collect();
        text.push('?');
        text.push_str(&joined.join("&"));
    }
    text
}

/// Base64 of the HMAC-SHA1 of `text` under `secret`.
pub fn sign(text: &str, secret: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, text.as_bytes()).as_ref())
}

/// Checks `v2` on `request` with `secret` at Unix time `now`: the signature, then a presigned
/// URL's expiry or a header signature's date (within 15 minutes).
pub fn verify(
    request: &Signed,
    v2: &V2,
    virtual_bucket: Option<&str>,
    secret: &str,
    now: i64,
) -> Result<(), SigV4Error> {
    let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let date = match v2.expires {
        Some(expires) => expires.to_string(),
        None if header("x-amz-date").is_some() => String::new(),
        None => header("date")
            .ok_or_else(|| SigV4Error::Malformed("a SigV2 request needs a Date or x-amz-date header".into()))?
            .to_string(),
    };
    let expected = sign(&string_to_sign(request, &date, virtual_bucket), secret);
    if !crate::sigv4::same_text(&expected, &v2.signature) {
        return Err(SigV4Error::SignatureDoesNotMatch);
    }
    match v2.expires {
        Some(expires) if now > expires => Err(SigV4Error::Expired),
        Some(_) => Ok(()),
        None => {
            let sent = header("x-amz-date")
                .or(header("date"))
                .and_then(photon_runtime::time::parse_http_date)
                .map(|ms| ms / 1000);
            match sent {
                Some(at) if (now - at).unsigned_abs() <= MAX_SKEW.as_secs() => Ok(()),
                Some(_) => Err(SigV4Error::RequestTimeTooSkewed),
                None => Err(SigV4Error::Malformed("the request's date is not an HTTP date".into())),
            }
        }
    }
}

impl AccessKeys {
    /// Verifies a SigV2-signed request; answers the access key.
    pub async fn verify_v2(
        &self,
        request: &Signed<'_>,
        v2: &V2,
        virtual_bucket: Option<&str>,
        now: i64,
    ) -> Result<AccessKey, SigV4Error> {
        let key = self.resolve(&v2.access_key).await?;
        verify(request, v2, virtual_bucket, key.secret(), now)?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    /// AWS's documented examples ("Signing and authenticating REST requests", SigV2): a GET
    /// with a Date header and the same object presigned until 1175139620.
    #[test]
    fn the_documented_examples_verify() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "johnsmith.s3.amazonaws.com".parse().unwrap());
        headers.insert("date", "Tue, 27 Mar 2007 19:36:42 +0000".parse().unwrap());
        let request = Signed { method: "GET", path: "/photos/puppy.jpg", query: "", headers: &headers };
        let text = string_to_sign(&request, "Tue, 27 Mar 2007 19:36:42 +0000", Some("johnsmith"));
        assert_eq!(text, "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg");
        let signature = sign(&text, SECRET);
        let v2 = V2 { access_key: "AKIAIOSFODNN7EXAMPLE".into(), signature: signature.clone(), expires: None };
        let at = photon_runtime::time::parse_http_date("Tue, 27 Mar 2007 19:36:42 +0000").unwrap() / 1000;
        assert_eq!(verify(&request, &v2, Some("johnsmith"), SECRET, at + 60), Ok(()));
        assert_eq!(verify(&request, &v2, Some("johnsmith"), SECRET, at + 3600), Err(SigV4Error::RequestTimeTooSkewed));
        assert_eq!(verify(&request, &v2, Some("other"), SECRET, at), Err(SigV4Error::SignatureDoesNotMatch));

        let query = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1175139620&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D";
        let presigned = Signed { method: "GET", path: "/photos/puppy.jpg", query, headers: &HeaderMap::new() };
        let v2 = parse(&HeaderMap::new(), query).unwrap().unwrap();
        assert_eq!(v2.expires, Some(1175139620));
        assert_eq!(verify(&presigned, &v2, Some("johnsmith"), SECRET, 1175139000), Ok(()));
        assert_eq!(verify(&presigned, &v2, Some("johnsmith"), SECRET, 1175139621), Err(SigV4Error::Expired));
    }

    #[test]
    fn subresources_and_amz_headers_are_signed() {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-meta-b", "two   words".parse().unwrap());
        headers.insert("X-Amz-Date", "Tue, 27 Mar 2007 19:36:42 +0000".parse().unwrap());
        headers.insert("content-type", "text/plain".parse().unwrap());
        let request =
            Signed { method: "PUT", path: "/b/k", query: "uploadId=abc&partNumber=2&foo=bar", headers: &headers };
        assert_eq!(
            string_to_sign(&request, "", None),
            "PUT\n\ntext/plain\n\nx-amz-date:Tue, 27 Mar 2007 19:36:42 +0000\nx-amz-meta-b:two words\n/b/k?partNumber=2&uploadId=abc"
        );
        assert!(parse(&HeaderMap::new(), "prefix=a").is_none());
        assert!(matches!(parse(&HeaderMap::new(), "AWSAccessKeyId=k&Signature=s"), Some(Err(_))));
    }
}
